"""The import contract of the device side: ``tinymlaas.edge`` imports nothing from the service.

Devices run the edge package alone (the x86 firmware is the package plus a model),
so an import of service code from it would fail on the device, not in the service.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import tinymlaas

PACKAGE = Path(tinymlaas.__file__).parent
EDGE = PACKAGE / "edge"


def _imported(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, lazily or not, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                pkg = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                found.append((node.lineno, ".".join([*pkg, *(node.module or "").split(".")]).strip(".")))
            else:
                found.append((node.lineno, node.module or ""))
    return found


def test_edge_modules_import_only_edge_code() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in sorted(EDGE.rglob("*.py"))
        for line, name in _imported(path)
        if (name == "tinymlaas" or name.startswith("tinymlaas."))
        and name != "tinymlaas.edge" and not name.startswith("tinymlaas.edge.")
    ]
    assert not wrong, "device code imports the service:\n" + "\n".join(wrong)


def test_importing_every_edge_module_loads_no_service_module() -> None:
    modules = sorted(
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in EDGE.rglob("*.py"))
    code = (f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('tinymlaas'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    service = [m for m in loaded if m not in ("tinymlaas", "tinymlaas.edge") and
               not m.startswith("tinymlaas.edge.")]
    assert not service, f"importing the edge package loaded service modules: {service}"
