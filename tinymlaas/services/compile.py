"""Compile a model for a board into an inference module directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tinymlaas import tflite
from tinymlaas.errors import InvalidInput
from tinymlaas.models import Board, ModuleManifest
from tinymlaas.plugins.base import Compiler, Progress, no_progress
from tinymlaas.plugins.registry import compiler_for
from tinymlaas.services.staging import staged_dir

MANIFEST = "manifest.json"


def make_compiler(board: Board, name: str | None, options: dict[str, Any]) -> Compiler:
    cls = compiler_for(board, name)
    try:
        opts = cls.Options.model_validate(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"compiler '{cls.name}' option '{where}': {first['msg']}") from exc
    return cls(opts)


def compile_model(
    model: bytes,
    board: Board,
    out_dir: Path,
    *,
    compiler: str | None = None,
    options: dict[str, Any] | None = None,
    name: str = "model",
    progress: Progress = no_progress,
) -> ModuleManifest:
    """Check, compile and write ``out_dir``; ``out_dir`` is untouched on any error."""
    comp = make_compiler(board, compiler, options or {})
    return compile_with(comp, model, board, out_dir, name=name, progress=progress)


def compile_with(comp: Compiler, model: bytes, board: Board, out_dir: Path, *, name: str = "model",
                 progress: Progress = no_progress) -> ModuleManifest:
    """:func:`compile_model` with a compiler already chosen and configured."""
    progress("reading the model", 0.0)
    info = tflite.inspect(model)
    comp.check(info, board)
    with staged_dir(out_dir) as tmp:
        manifest = comp.compile(model, info, board, tmp, name=name, progress=progress)
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    progress("compiled", 1.0)
    return manifest


def read_module(module_dir: Path) -> ModuleManifest:
    path = module_dir / MANIFEST
    if not path.is_file():
        raise InvalidInput(f"{module_dir} is not an inference module: it has no {MANIFEST}")
    try:
        return ModuleManifest.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as exc:
        raise InvalidInput(f"{path} is not a valid inference-module manifest: {exc}") from exc
