"""Acme's builder entry point: the builder contract's self-test; a build runs the toolchain
inside (the project's builder) and leaves Acme's mark in the manifest (extra fields are allowed)."""

import json
import pathlib
import subprocess
import sys

if sys.argv[1:] == ["--self-test"]:
    import tflite_micro  # the toolchain this builder needs: it must import

    boards = sorted(p.stem for p in pathlib.Path("/builder/boards").glob("*.toml"))
    print(f"acme: TFLM {tflite_micro.__name__} present, boards {', '.join(boards)}")
    print("@selftest " + json.dumps({"boards": boards, "toolchain": "acme x86 1.0"}))
    sys.exit(0)
print("@progress 0.01 acme: checking the model", flush=True)
code = subprocess.call(["/opt/venv/bin/python", "/builder/build.py", *sys.argv[1:]])
if code == 0:
    out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1]) / "manifest.json"
    manifest = json.loads(out.read_text())
    out.write_text(json.dumps({**manifest, "built_by": "acme x86 1.0"}, indent=2))
sys.exit(code)
