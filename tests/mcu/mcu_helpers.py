"""Helpers for the Cortex-M firmware tests: a hand-written stand-in module
(tests/data/echo_module, not the AOT compiler's output) and the builder script."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from tinymlaas.builders.local import LocalBuilder
from tinymlaas.config import REPO_ROOT
from tinymlaas.models import (
    Board,
    CompilerInfo,
    FirmwareManifest,
    ModuleManifest,
    ModuleMemory,
    TensorSpec,
)
from tinymlaas.targets import get_board, load_boards

TARGETS = REPO_ROOT / "targets"
ECHO_SRC = REPO_ROOT / "tests" / "data" / "echo_module"
MCU_BOARDS = sorted(n for n, b in load_boards(TARGETS).items() if b.module_kind == "c-source")


def load_cortex_m_builder() -> ModuleType:
    """targets/_cortex-m/builder/build.py as a module (it is a script in the builder image)."""
    path = TARGETS / "_cortex-m" / "builder" / "build.py"
    spec = importlib.util.spec_from_file_location("cortex_m_build", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def write_echo_module(dest: Path) -> ModuleManifest:
    dest.mkdir(parents=True, exist_ok=True)
    model = b"echo stand-in model\n"
    sha = hashlib.sha256(model).hexdigest()
    (dest / "model.tflite").write_bytes(model)
    shutil.copy2(ECHO_SRC / "model.c", dest / "model.c")
    header = (ECHO_SRC / "model.h").read_text().replace('"echo"', f'"{sha}"')
    sha_init = "{" + ", ".join(str(b) for b in bytes.fromhex(sha)) + "}"
    (dest / "model.h").write_text(header.replace("MODEL_SHA256_BYTES {0}", f"MODEL_SHA256_BYTES {sha_init}"))

    def spec(name: str, scale: float, zp: int) -> TensorSpec:
        return TensorSpec(name=name, shape=[1, 4], dtype="int8", scale=scale, zero_point=zp)

    manifest = ModuleManifest(
        name="model", kind="c-source", target="any", model_sha256=sha, model_file="model.c",
        ops=[], inputs=[spec("x", 0.5, -3)], outputs=[spec("y", 0.25, 0)],
        compiler=CompilerInfo(name="hand-written", version="0"),
        memory=ModuleMemory(weights_bytes=4, arena_bytes=0),
    )
    (dest / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return manifest


class EchoFirmware:
    """Builds the echo firmware per board on first use (the local toolchain)."""

    def __init__(self, module: Path, root: Path) -> None:
        self.module, self.root = module, root
        self.built: dict[str, tuple[Board, FirmwareManifest]] = {}

    def __call__(self, board_name: str) -> tuple[Board, Path, FirmwareManifest]:
        if board_name not in self.built:
            board = get_board(TARGETS, board_name)
            fw = LocalBuilder().build(self.module, board, self.root / board_name)
            self.built[board_name] = (board, fw)
        board, fw = self.built[board_name]
        return board, self.root / board_name / fw.image, fw
