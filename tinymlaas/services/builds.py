"""Model and build use cases: register or train a model, compile + build it for a board, keep
everything as artifacts. Each request is checked once, here, before any job starts."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import IO, Any

from tinymlaas import tflite
from tinymlaas.config import Settings
from tinymlaas.errors import InvalidInput, TooLarge
from tinymlaas.jobs import JobRunner, task
from tinymlaas.models import Board, Build, Job, Model, StoredFirmware, StoredModule
from tinymlaas.models_workers import TaskCall
from tinymlaas.plugins.base import Builder, Compiler, Progress
from tinymlaas.plugins.registry import builder_plugin
from tinymlaas.services.compile import compile_with, make_compiler
from tinymlaas.services.deployments import pack_module, sign_artifact
from tinymlaas.signing import Signer
from tinymlaas.store import Store
from tinymlaas.targets import get_board
from tinymlaas.zoo import get_recipe

MAX_MODEL_BYTES = 64 << 20


def upload_model(store: Store, name: str, body: IO[bytes], *, filename: str, limit: int) -> Model:
    """Register an uploaded .tflite; read at most ``limit`` bytes, refuse anything larger."""
    data = body.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"model file is larger than {limit:,} bytes")
    return register_model(store, name, data, source=f"upload:{filename}")


def register_model(store: Store, name: str, data: bytes, *, source: str) -> Model:
    """Validate first: a file that is not a model is never stored."""
    return store.add_model(name, data, source=source, info=tflite.inspect(data))


def start_training(store: Store, settings: Settings, runner: JobRunner, recipe: str,
                   seed: int | None) -> Job:
    get_recipe(recipe)  # 404 now, not in the job
    job = store.new_job("train")
    return runner.submit_task(job, TaskCall(task="train-recipe", args={"recipe": recipe, "seed": seed}))


@task("train-recipe")
def _train_recipe_task(store: Store, settings: Settings, args: dict[str, Any], progress: Progress
                       ) -> dict[str, Any]:
    return train_and_register(store, settings, args["recipe"], args["seed"], progress)


def train_and_register(store: Store, settings: Settings, name: str, seed: int | None,
                       progress: Progress) -> dict[str, Any]:
    """Train a zoo recipe (cached) and register the result as a model version."""
    recipe = get_recipe(name)
    progress(f"training {name}", 0.05)
    data = recipe.load(settings.zoo_dir, seed)
    progress("registering", 0.95)
    rec = register_model(store, name, data, source=f"zoo:{name}:seed={seed or recipe.default_seed}")
    return {"model_id": rec.id, "name": rec.name, "version": rec.version, "sha256": rec.sha256}


def start_build(store: Store, settings: Settings, runner: JobRunner, *, model: str, target: str,
                compiler: str | None, options: dict[str, Any], builder: str | None, version: str,
                toolchain: str | None = None) -> tuple[Build, Job]:
    """Check the request (model, board, compiler and its options, builder or registered
    toolchain), then build as a job."""
    rec = store.model(model)
    board = get_board(settings.targets_dir, target)
    make_compiler(board, compiler, options)  # a bad option is refused now, not in the job
    if toolchain is not None and builder is not None:
        raise InvalidInput("give a builder or a toolchain, not both")
    label = f"toolchain:{toolchain}" if toolchain is not None else builder or "docker"
    _builder(store, label, board)
    job = store.new_job("build")
    build = store.add_build(job_id=job.id, model_id=rec.id, target=board.name, compiler=compiler,
                            options=options, builder=label, version=version)
    runner.submit_task(job, TaskCall(task="build", args={"build_id": build.id}))
    return build, job


def _builder(store: Store, label: str, board: Board) -> Builder:
    """A build's builder from its record: a plugin by name, or ``toolchain:NAME``."""
    kind, _, toolchain = label.partition(":")
    if kind == "toolchain":
        from tinymlaas.services.toolchains import toolchain_builder

        return toolchain_builder(store, toolchain, board)
    return builder_plugin(label)()


def _leftovers(settings: Settings, args: dict[str, Any]) -> int:
    """A dead worker's attempt may have left its builder container running (its process was the
    one to remove it): removed by the reaper, on its machine's engine."""
    from tinymlaas.services.recovery import remove_builders

    return remove_builders(settings.data_dir / "work", prefix=f"{args['build_id']}.")


@task("build", on_reaped=_leftovers)
def _build_task(store: Store, settings: Settings, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """A build from its record alone (any process that shares the store and the data directory)."""
    build = store.build(args["build_id"])
    board = get_board(settings.targets_dir, build.target)
    return run_build(store, settings, build, progress, board=board,
                     compiler=make_compiler(board, build.compiler, build.options),
                     builder=_builder(store, build.builder, board),
                     signer=Signer.load_or_create(settings.data_dir))


def _store_dir(store: Store, folder: Path) -> dict[str, str]:
    return {p.name: store.artifacts.put_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def run_build(store: Store, settings: Settings, build: Build, progress: Progress, *, board: Board,
              compiler: Compiler, builder: Builder, signer: Signer) -> dict[str, Any]:
    """Compile and build one registered model; the result names every artifact by hash, and the
    packages devices get (the OS image for FOTA, the module for SOTA), signed."""
    model = store.model(build.model_id)
    data = store.artifacts.get(model.sha256).read_bytes()
    # One folder per attempt: a worker that died may leave its builder container writing into its own.
    work = settings.data_dir / "work" / f"{build.id}.{uuid.uuid4().hex[:8]}"
    try:
        module = compile_with(compiler, data, board, work / "module", name=_c_name(model),
                              progress=lambda s, f: progress(f"compile: {s}", f * 0.3))
        firmware = builder.build(work / "module", board, work / "firmware", version=build.version,
                                 progress=lambda s, f: progress(f"build: {s}", 0.3 + f * 0.65))
        progress("storing artifacts", 0.97)
        module_files = _store_dir(store, work / "module")
        firmware_files = _store_dir(store, work / "firmware")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stored_module = StoredModule(**module.model_dump(), artifacts=module_files)
    stored_module.package_sha256 = store.artifacts.put_bytes(
        signer.sign(pack_module(store, stored_module, model.sha256)))
    stored_fw = StoredFirmware(**firmware.model_dump(), artifacts=firmware_files)
    stored_fw.package_sha256 = sign_artifact(store, signer, stored_fw.image_artifact)
    done = store.finish_build(build.id, module=stored_module, firmware=stored_fw)
    assert done.firmware is not None
    return {"build_id": build.id, "firmware": done.firmware.model_dump(mode="json")}


def _c_name(model: Model) -> str:
    """A C identifier prefix from the model name (generated code uses it)."""
    ident = "".join(c if c.isalnum() else "_" for c in model.name).lower()
    return ident if ident and ident[0].isalpha() else f"m_{ident}"
