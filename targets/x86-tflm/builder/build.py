#!/usr/bin/env python3
"""x86-tflm builder: model (+ inference module) -> ``firmware.pyz``, a bootable zipapp.

Partner contract: ``build.py /in/model.tflite --out /out [--board B] [--version V]``.
When the model's folder holds an inference module (``manifest.json``) from
``tinymlaas compile``, it is used; a bare model is compiled here first. The
image is reproducible: same inputs, same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import tinymlaas
from tinymlaas.edge.archive import reproducible_zip
from tinymlaas.errors import TinyMLaaSError
from tinymlaas.models import FirmwareManifest, ModuleManifest
from tinymlaas.services.compile import MANIFEST, compile_model, read_module
from tinymlaas.targets import load_board_from

IMAGE = "firmware.pyz"
#: What of the package goes into the firmware: the device side, whole (tinymlaas.edge).
FIRMWARE_PACKAGE = "edge"
FIRMWARE_SUFFIXES = (".py", ".xml")


def firmware_members() -> dict[str, bytes]:
    """``tinymlaas/__init__.py`` and every module and object file of ``tinymlaas.edge``."""
    pkg = Path(tinymlaas.__file__).parent
    files = [pkg / "__init__.py", *sorted(
        p for p in (pkg / FIRMWARE_PACKAGE).rglob("*")
        if p.suffix in FIRMWARE_SUFFIXES and "__pycache__" not in p.parts)]
    return {f"tinymlaas/{p.relative_to(pkg).as_posix()}": p.read_bytes() for p in files}


def progress(step: str, fraction: float) -> None:
    print(f"@progress {fraction:.2f} {step}", flush=True)


def module_for(model_path: Path, board_name: str, boards_dir: Path, work: Path) -> ModuleManifest:
    model = model_path.read_bytes()
    if (model_path.parent / MANIFEST).is_file():
        module = read_module(model_path.parent)
        if module.model_sha256 != hashlib.sha256(model).hexdigest():
            raise SystemExit("error: model.tflite does not match its inference module's hash")
        return module
    board = load_board_from(boards_dir, board_name)
    return compile_model(model, board, work / "module", progress=progress)


def write_image(dest: Path, model: bytes, firmware_manifest: dict[str, object]) -> None:
    members = firmware_members()
    members["__main__.py"] = b"import sys\nfrom tinymlaas.edge.x86 import main\nsys.exit(main())\n"
    members["firmware/model.tflite"] = model
    members["firmware/manifest.json"] = json.dumps(firmware_manifest, indent=2).encode()
    dest.write_bytes(reproducible_zip(members))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", type=Path, default=Path("/out"))
    ap.add_argument("--board", default="x86-tflm")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--boards-dir", type=Path, default=Path(__file__).parent / "boards")
    args = ap.parse_args()

    try:
        board = load_board_from(args.boards_dir, args.board)
        progress("reading the inference module", 0.05)
        with tempfile.TemporaryDirectory() as tmp:
            module = module_for(args.model, args.board, args.boards_dir, Path(tmp))
        model = args.model.read_bytes()
    except (OSError, TinyMLaaSError) as exc:
        print(f"error: {exc}", flush=True)
        return 2

    progress("packing the OS image", 0.4)
    inner = {
        "board": board.name,
        "version": args.version,
        "model_sha256": module.model_sha256,
        "arena_bytes": module.memory.arena_bytes,
        "inputs": [t.model_dump() for t in module.inputs],
        "outputs": [t.model_dump() for t in module.outputs],
        "module": module.model_dump(),
        # what the device tells the service about itself (LwM2M object 33100)
        "board_info": {"cpu": board.cpu, "arch": board.arch, "flash_bytes": board.flash_bytes,
                       "ram_bytes": board.ram_bytes, "clock_hz": board.clock_hz,
                       "accelerators": board.accelerators},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    image = args.out / IMAGE
    write_image(image, model, inner)

    progress("self-test: booting the image once", 0.7)
    test = subprocess.run([sys.executable, str(image), "--self-test"], capture_output=True,
                          text=True, timeout=120, check=False)
    if test.returncode != 0:
        print(f"error: the image does not boot: {(test.stderr or test.stdout).strip()[-300:]}")
        return 1

    data = image.read_bytes()
    ram = module.memory.arena_bytes
    manifest = FirmwareManifest(
        board=board.name,
        version=args.version,
        model_sha256=module.model_sha256,
        image=IMAGE,
        image_sha256=hashlib.sha256(data).hexdigest(),
        files={IMAGE: hashlib.sha256(data).hexdigest()},
        sizes={"flash": len(data), "ram": ram},
        headroom={"flash": board.flash_bytes - len(data), "ram": board.ram_bytes - ram},
        module=module.model_dump(),
    )
    (args.out / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    progress("built", 1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
