"""Build use cases: model in the store -> module -> OS image, all kept as artifacts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tinymlaas import tflite
from tinymlaas.config import Settings
from tinymlaas.plugins.base import Builder, Progress
from tinymlaas.plugins.registry import get
from tinymlaas.services.compile import compile_model
from tinymlaas.store import BuildRecord, ModelRecord, Store
from tinymlaas.targets import get_board
from tinymlaas.zoo import get_recipe


def _store_dir(store: Store, folder: Path) -> dict[str, str]:
    return {p.name: store.artifacts.put_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def run_build(store: Store, settings: Settings, build: BuildRecord, progress: Progress) -> dict[str, Any]:
    """Compile and build one registered model; the result names every artifact by hash."""
    model = store.model(build.model_id)
    data = store.artifacts.get(model.sha256).read_bytes()
    board = get_board(settings.targets_dir, build.target)
    work = settings.data_dir / "work" / build.id
    shutil.rmtree(work, ignore_errors=True)
    try:
        module = compile_model(
            data, board, work / "module", compiler=build.compiler, options=build.options,
            name=_c_name(model), progress=lambda s, f: progress(f"compile: {s}", f * 0.3),
        )
        builder = get("builders", build.builder, Builder)()
        firmware = builder.build(work / "module", board, work / "firmware", version=build.version,
                                 progress=lambda s, f: progress(f"build: {s}", 0.3 + f * 0.65))
        progress("storing artifacts", 0.97)
        module_files = _store_dir(store, work / "module")
        firmware_files = _store_dir(store, work / "firmware")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    module_doc = {**module.model_dump(mode="json"), "artifacts": module_files}
    firmware_doc = {**firmware.model_dump(mode="json"), "artifacts": firmware_files}
    store.finish_build(build.id, module=module_doc, firmware=firmware_doc)
    return {"build_id": build.id, "firmware": firmware_doc}


def _c_name(model: ModelRecord) -> str:
    """A C identifier prefix from the model name (generated code uses it)."""
    ident = "".join(c if c.isalnum() else "_" for c in model.name).lower()
    return ident if ident and ident[0].isalpha() else f"m_{ident}"


def train_and_register(store: Store, settings: Settings, name: str, seed: int | None,
                       progress: Progress) -> dict[str, Any]:
    """Train a zoo recipe (cached) and register the result as a model version."""
    recipe = get_recipe(name)
    progress(f"training {name}", 0.05)
    data = recipe.load(settings.zoo_dir, seed)
    progress("registering", 0.95)
    rec = register_model(store, name, data, source=f"zoo:{name}:seed={seed or recipe.default_seed}")
    return {"model_id": rec.id, "name": rec.name, "version": rec.version, "sha256": rec.sha256}


def register_model(store: Store, name: str, data: bytes, *, source: str) -> ModelRecord:
    """Validate first: a file that is not a model is never stored."""
    info = tflite.inspect(data)
    return store.add_model(name, data, source=source, info=info.model_dump(mode="json"))
