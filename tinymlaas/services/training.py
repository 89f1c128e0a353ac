"""Training with settings, continuing a model, and bringing your own Keras model: each checked here
at once, then run as a cancellable job whose TensorFlow work is a child process
(:mod:`tinymlaas.datasets.trainer`), one at a time. The result is one model version (the int8
.tflite registered, its float .tflite and Keras model kept as variants) with its lineage and its
float-vs-int8 evaluation on the dataset version's test split."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from tinymlaas.config import Settings
from tinymlaas.datasets.models import (
    DEFAULT_TEMPLATE,
    TEMPLATES,
    Dataset,
    EpochMetrics,
    Lineage,
    Split,
    Task,
    Training,
    TrainingSettings,
    TrainingState,
    Variant,
)
from tinymlaas.datasets.tensors import npy_load, to_model
from tinymlaas.errors import Conflict, InvalidInput, NotFound, PluginError
from tinymlaas.jobs import JobCancelled, JobRunner, task
from tinymlaas.models import Job, Model
from tinymlaas.models_workers import TaskCall
from tinymlaas.plugins.base import Progress, no_progress
from tinymlaas.services.builds import register_model
from tinymlaas.services.datasets import resolve
from tinymlaas.store import Store, now

#: TensorFlow takes the machine's cores and gigabytes: one model trains (or converts) at a time.
_ONE_AT_A_TIME = threading.Lock()
MIN_TRAINING_SAMPLES = 10
KERAS_SUFFIXES = (".keras", ".h5", ".zip")


@dataclass
class Data:
    """A dataset version's labelled samples as model-input floats, per split."""

    x: dict[Split, np.ndarray]
    y: dict[Split, np.ndarray]


def load_data(store: Store, ds: Dataset, version: int, splits: tuple[Split, ...] = tuple(Split)) -> Data:
    rows = store.datasets.labelled(ds.id, version)
    index = {c: i for i, c in enumerate(ds.spec.classes)}
    x: dict[Split, list[np.ndarray]] = {s: [] for s in splits}
    y: dict[Split, list[int]] = {s: [] for s in splits}
    for sha, label, split in rows:
        if split in x:
            x[split].append(npy_load(store.artifacts.get(sha).read_bytes()))
            y[split].append(index[label])
    shape = (0, *ds.spec.shape)
    return Data(
        x={
            s: to_model(np.stack(v), ds.spec.dtype) if v else np.zeros(shape, np.float32)
            for s, v in x.items()
        },
        y={s: np.asarray(v, dtype=np.int64) for s, v in y.items()},
    )


# -- checking a request -------------------------------------------------------------------------


@dataclass
class Plan:
    dataset: Dataset
    version: int
    name: str
    template: str
    input_shape: list[int]
    base: Model | None = None
    base_keras: str | None = None


def plan_training(store: Store, req: TrainingSettings) -> Plan:
    """Everything that can be refused, refused now (404/409/422), before a job starts."""
    ds, version = resolve(store, req.dataset)
    template = req.template or DEFAULT_TEMPLATE[ds.task]
    if template not in TEMPLATES[ds.task]:
        raise InvalidInput(
            f"template: '{template}' does not take {ds.task.value} samples; use "
            f"{' or '.join(TEMPLATES[ds.task])}"
        )
    shape = list(ds.spec.shape)
    if req.input_size is not None:
        if ds.task is Task.tabular:
            raise InvalidInput("input_size: a tabular model takes the features as they are")
        want = 2 if ds.task is Task.image else 1
        if len(req.input_size) != want or any(d < 1 or d > 4096 for d in req.input_size):
            raise InvalidInput(
                f"input_size: give {'[height, width]' if want == 2 else '[length]'} (each 1..4096)"
            )
        shape = [*req.input_size, shape[-1]]
    counts = store.datasets.counts(ds.id, version)
    labelled = counts.total - counts.unlabelled
    present = [c for c, n in counts.labels.items() if n]
    if labelled < MIN_TRAINING_SAMPLES or len(present) < 2:
        raise InvalidInput(
            f"dataset '{ds.name}' version {version} has {labelled} labelled samples in "
            f"{len(present)} classes; training needs at least {MIN_TRAINING_SAMPLES} in 2"
        )
    plan = Plan(dataset=ds, version=version, name=req.name or ds.name, template=template, input_shape=shape)
    if req.base is not None:
        plan.base = store.model(req.base)
        try:
            lineage = store.datasets.lineage(plan.base.id)
        except NotFound:
            raise InvalidInput(
                f"base: model '{req.base}' was not trained here, so there is no Keras model to continue"
            ) from None
        if Variant.keras not in lineage.variants:
            raise InvalidInput(f"base: model '{req.base}' keeps no Keras model to continue")
        if lineage.classes != ds.spec.classes:
            raise InvalidInput(
                f"base: model '{req.base}' predicts {lineage.classes}; the dataset's "
                f"classes are {ds.spec.classes}"
            )
        plan.base_keras, plan.input_shape = lineage.variants[Variant.keras], lineage.input_size
    return plan


# -- the job ----------------------------------------------------------------------------------


def start_training(store: Store, settings: Settings, runner: JobRunner, req: TrainingSettings) -> Training:
    plan = plan_training(store, req)
    job = store.new_job("train")
    store.datasets.lock(plan.dataset.id, plan.version)
    training = store.datasets.add_training(
        job_id=job.id, dataset_id=plan.dataset.id, version=plan.version, settings=req
    )
    runner.submit_task(job, TaskCall(task="train", args={"training_id": training.id}), cancellable=True)
    return training


def _abandoned(store: Store, args: dict[str, Any], reason: str) -> None:
    store.datasets.update_training(args["training_id"], state=TrainingState.failed, error=reason)


@task("train", on_abandon=_abandoned)
def _train_task(store: Store, settings: Settings, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """A training from its record: the dataset version it locked, its settings."""
    training = store.datasets.training(args["training_id"])
    pinned = training.settings.model_copy(
        update={"dataset": f"{training.dataset_id}:{training.dataset_version}"})
    return train(store, settings, training, plan_training(store, pinned), progress)


def train_now(store: Store, settings: Settings, req: TrainingSettings, progress: Progress = no_progress
              ) -> dict[str, Any]:
    """Train in this process's thread (the CLI), recorded as a job and a training like the API's."""
    from tinymlaas.models import JobState

    plan = plan_training(store, req)
    job = store.new_job("train")
    store.datasets.lock(plan.dataset.id, plan.version)
    training = store.datasets.add_training(job_id=job.id, dataset_id=plan.dataset.id, version=plan.version,
                                           settings=req)
    store.update_job(job.id, state=JobState.running)
    try:
        result = train(store, settings, training, plan, progress)
    except BaseException as exc:
        message = getattr(exc, "message", None) or f"interrupted ({type(exc).__name__})"
        store.update_job(job.id, state=JobState.failed, error=message)
        if not isinstance(exc, Exception):
            store.datasets.update_training(training.id, state=TrainingState.failed, error=message)
        raise
    store.update_job(job.id, state=JobState.succeeded, progress=1.0, step="done", result=result)
    return result


def cancel_training(store: Store, runner: JobRunner, training_id: str) -> Training:
    training = store.datasets.training(training_id)
    if training.state not in (TrainingState.queued, TrainingState.running):
        raise Conflict(f"training '{training_id}' has already ended ({training.state.value})")
    runner.cancel(training.job_id)
    return store.datasets.training(training_id)


def _one_at_a_time(progress: Progress) -> None:
    while not _ONE_AT_A_TIME.acquire(timeout=0.5):
        progress("waiting for the model training before this one", 0.0)


def train(
    store: Store, settings: Settings, training: Training, plan: Plan, progress: Progress = no_progress
) -> dict[str, Any]:
    """Train, convert, register, evaluate; the training record follows every epoch."""
    req, ds = training.settings, plan.dataset
    tid = training.id
    started = time.monotonic()
    _one_at_a_time(progress)
    try:
        store.datasets.update_training(tid, state=TrainingState.running)
        progress("loading the dataset version", 0.01)
        data = load_data(store, ds, plan.version)
        order = np.random.default_rng(req.seed).permutation(len(data.x[Split.train]))
        job = {
            "mode": "train",
            "task": ds.task.value,
            "classes": ds.spec.classes,
            "template": plan.template,
            "input_shape": plan.input_shape,
            "sample_shape": ds.spec.shape,
            **req.model_dump(
                include={
                    "width",
                    "epochs",
                    "batch_size",
                    "learning_rate",
                    "optimizer",
                    "loss",
                    "label_smoothing",
                    "augmentation",
                    "seed",
                }
            ),
        }
        arrays = {
            "x_train": data.x[Split.train],
            "y_train": data.y[Split.train],
            "x_val": data.x[Split.validation],
            "y_val": data.y[Split.validation],
            "x_calib": data.x[Split.train][order[: req.calibration_samples]],
        }
        epochs: list[EpochMetrics] = []

        def on_epoch(row: EpochMetrics) -> None:
            epochs.append(row)
            store.datasets.update_training(tid, epochs=[e.model_dump() for e in epochs])

        work = settings.data_dir / "work" / f"train-{tid}"
        with _workdir(work):
            if plan.base_keras is not None:
                job["base"] = str(work / "base.keras")
                shutil.copyfile(store.artifacts.get(plan.base_keras), work / "base.keras")
            result = run_child(work, job, arrays, progress, on_epoch=on_epoch, total_epochs=req.epochs)
            progress("registering the model version", 0.92)
            model = register_model(
                store,
                plan.name,
                (work / "int8.tflite").read_bytes(),
                source=f"train:{ds.name}:{plan.version}:seed={req.seed}",
            )
            variants = {
                Variant.int8: model.sha256,
                Variant.float: store.artifacts.put_file(work / "float.tflite"),
                Variant.keras: store.artifacts.put_file(work / "model.keras"),
            }
        lineage = Lineage(
            model_id=model.id,
            kind="trained",
            dataset_id=ds.id,
            dataset=ds.name,
            dataset_version=plan.version,
            classes=ds.spec.classes,
            input_size=result["input_shape"],
            settings=req.model_dump(mode="json"),
            seed=req.seed,
            training_id=tid,
            parent_model_id=plan.base.id if plan.base else None,
            variants=variants,
            created_at=now(),
        )
        progress("evaluating float and int8 on the test split", 0.95)
        from tinymlaas.services.evaluation import evaluate_variants

        evaluation = evaluate_variants(store, model, lineage, data)
        lineage.metrics = evaluation.metrics
        store.datasets.add_lineage(lineage)
        seconds = round(time.monotonic() - started, 2)
        store.datasets.update_training(tid, state=TrainingState.succeeded, model_id=model.id, seconds=seconds)
    except JobCancelled:
        store.datasets.update_training(tid, state=TrainingState.cancelled, error="cancelled")
        raise
    except Exception as exc:
        store.datasets.update_training(
            tid, state=TrainingState.failed, error=getattr(exc, "message", str(exc))
        )
        raise
    finally:
        _ONE_AT_A_TIME.release()
    return {
        "training_id": tid,
        "model_id": model.id,
        "name": model.name,
        "version": model.version,
        "evaluation_id": evaluation.id,
        "seconds": seconds,
        "accuracy": {k: m.accuracy for k, m in evaluation.metrics.items()},
    }


class _workdir:
    """A fresh work folder, removed afterwards whatever happens."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Path:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def run_child(
    work: Path,
    job: dict[str, Any],
    arrays: dict[str, np.ndarray],
    progress: Progress,
    *,
    on_epoch: Any = None,
    total_epochs: int = 0,
    timeout_s: float = 3600,
) -> dict[str, Any]:
    """Run the trainer in a child process (its own process group) and follow its lines; a cancel
    (the progress callback raising) or a timeout kills the whole group."""
    (work / "job.json").write_text(json.dumps(job))
    with (work / "data.npz").open("wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    log = (work / "trainer.log").open("wb")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinymlaas.datasets.trainer", str(work)],
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    step, fraction, error = "starting TensorFlow", 0.02, None
    deadline = time.monotonic() + timeout_s
    buffered = b""
    try:
        while True:
            progress(step, fraction)
            if time.monotonic() > deadline:
                raise PluginError(f"training took longer than {timeout_s:.0f} s")
            ready, _, _ = select.select([proc.stdout], [], [], 0.25)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for raw in lines:
                kind, _, text = raw.decode(errors="replace").partition(" ")
                if kind == "@epoch":
                    row = EpochMetrics.model_validate_json(text)
                    if on_epoch is not None:
                        on_epoch(row)
                    val = f", val accuracy {row.val_accuracy:.4f}" if row.val_accuracy is not None else ""
                    step = (
                        f"epoch {row.epoch}/{total_epochs}: loss {row.loss:.4f}, accuracy "
                        f"{row.accuracy:.4f}{val}"
                    )
                    fraction = 0.05 + 0.85 * row.epoch / max(total_epochs, 1)
                elif kind == "@step":
                    step = text
                elif kind == "@error":
                    error = text
        code = proc.wait()
    finally:
        if proc.poll() is None:
            _kill(proc)
        log.close()
    if code != 0:
        if error is None:
            tail = (work / "trainer.log").read_text(errors="replace").strip().splitlines()[-3:]
            error = f"the trainer exited with {code}: {' '.join(tail)}"
        raise (InvalidInput(error) if code == 2 else PluginError(error))
    result: dict[str, Any] = json.loads((work / "result.json").read_text())
    return result


def _kill(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


# -- bring your own model ---------------------------------------------------------------------


def _check_import(store: Store, filename: str, dataset: str | None, quantize: str
                  ) -> tuple[Dataset | None, int]:
    if not filename.lower().endswith(KERAS_SUFFIXES):
        raise InvalidInput(f"file: '{filename}' is not a Keras model (.keras, .h5) or a zipped SavedModel")
    if quantize not in ("int8", "float"):
        raise InvalidInput("quantize: int8 or float")
    if quantize == "int8" and dataset is None:
        raise InvalidInput("int8 conversion needs calibration data: give 'dataset' (its training split "
                           "calibrates the model)")
    if dataset is None:
        return None, 0
    ds, version = resolve(store, dataset)
    if quantize == "int8" and not store.datasets.counts(ds.id, version).splits.get(Split.train.value):
        raise InvalidInput(f"int8 conversion needs calibration data: dataset '{ds.name}' version "
                           f"{version} has no training samples")
    return ds, version


def _receive(work: Path, filename: str, body: IO[bytes], limit: int) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    source = work / ("model" + Path(filename.lower()).suffix)
    with source.open("wb") as fh:
        shutil.copyfileobj(body, fh, 1 << 20)
        copied = fh.tell()
    if copied > limit:
        shutil.rmtree(work, ignore_errors=True)
        raise InvalidInput(f"file: larger than {limit} bytes")
    return source


def start_import(store: Store, settings: Settings, runner: JobRunner, *, name: str, filename: str,
                 body: IO[bytes], dataset: str | None, quantize: str, limit: int) -> Job:
    """A user's Keras model (.keras, .h5, or a SavedModel zipped) to TFLite: checked now, converted
    as a job. int8 needs a dataset to calibrate on (its version's training split)."""
    ds, version = _check_import(store, filename, dataset, quantize)
    job = store.new_job("import")
    work = settings.data_dir / "work" / f"import-{job.id}"
    source = _receive(work, filename, body, limit)
    if ds is not None:
        store.datasets.lock(ds.id, version)
    runner.submit(job, lambda p: import_keras(store, work, source, name=name, filename=filename, dataset=ds,
                                              version=version, quantize=quantize, progress=p),
                  cancellable=True)
    return job


def import_now(store: Store, settings: Settings, *, name: str, filename: str, body: IO[bytes],
               dataset: str | None, quantize: str, progress: Progress = no_progress) -> dict[str, Any]:
    """:func:`start_import` in this thread (the CLI)."""
    from tinymlaas.services.builds import MAX_MODEL_BYTES

    ds, version = _check_import(store, filename, dataset, quantize)
    work = settings.data_dir / "work" / f"import-{uuid.uuid4().hex[:12]}"
    source = _receive(work, filename, body, MAX_MODEL_BYTES)
    if ds is not None:
        store.datasets.lock(ds.id, version)
    return import_keras(store, work, source, name=name, filename=filename, dataset=ds, version=version,
                        quantize=quantize, progress=progress)


def import_keras(
    store: Store,
    work: Path,
    source: Path,
    *,
    name: str,
    filename: str,
    dataset: Dataset | None,
    version: int,
    quantize: str,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    _one_at_a_time(progress)
    try:
        with _workdir(work / "out") as out:
            data = load_data(store, dataset, version) if dataset is not None else None
            shape = (0, *(dataset.spec.shape if dataset else [1]))
            calib = data.x[Split.train][:500] if data is not None else np.zeros(shape, np.float32)
            job = {
                "mode": "import",
                "source": str(source),
                "quantize": quantize,
                "classes": dataset.spec.classes if dataset else None,
                "sample_shape": dataset.spec.shape if dataset else None,
            }
            result = run_child(out, job, {"x_calib": calib}, progress)
            main = out / ("int8.tflite" if quantize == "int8" else "float.tflite")
            progress("registering the model version", 0.9)
            model = register_model(store, name, main.read_bytes(), source=f"keras:{filename}")
            if dataset is None or data is None:
                return {"model_id": model.id, "name": model.name, "version": model.version}
            variants = {Variant.float: store.artifacts.put_file(out / "float.tflite")}
            if quantize == "int8":
                variants[Variant.int8] = model.sha256
            if (out / "model.keras").exists():
                variants[Variant.keras] = store.artifacts.put_file(out / "model.keras")
            lineage = Lineage(
                model_id=model.id,
                kind="imported",
                dataset_id=dataset.id,
                dataset=dataset.name,
                dataset_version=version,
                classes=dataset.spec.classes,
                input_size=result["input_shape"],
                settings={"file": filename, "quantize": quantize},
                variants=variants,
                created_at=now(),
            )
            from tinymlaas.services.evaluation import evaluate_variants

            progress("evaluating on the test split", 0.95)
            evaluation = evaluate_variants(store, model, lineage, data)
            lineage.metrics = evaluation.metrics
            store.datasets.add_lineage(lineage)
    finally:
        _ONE_AT_A_TIME.release()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "model_id": model.id,
        "name": model.name,
        "version": model.version,
        "evaluation_id": evaluation.id,
        "accuracy": {k: m.accuracy for k, m in evaluation.metrics.items()},
    }


def lineage(store: Store, ref: str) -> Lineage:
    return store.datasets.lineage(store.model(ref).id)


def variant_file(store: Store, ref: str, variant: Variant) -> tuple[Path, str]:
    """A model version's variant (int8 or float .tflite, or its Keras model) and a file name for it."""
    model = store.model(ref)
    try:
        variants = store.datasets.lineage(model.id).variants
    except NotFound:
        variants = {
            Variant.int8
            if model.info.inputs and model.info.inputs[0].dtype == "int8"
            else Variant.float: model.sha256
        }
    if variant not in variants:
        raise NotFound(
            f"model '{model.name}:{model.version}' has no {variant.value} variant "
            f"(it has {', '.join(v.value for v in variants)})"
        )
    suffix = "keras" if variant is Variant.keras else "tflite"
    return store.artifacts.get(variants[variant]), f"{model.name}-v{model.version}-{variant.value}.{suffix}"
