"""Evaluation: a model version's float and int8 variants on a dataset split, in process (TFLM, the
same interpreter the devices are compared with), or its int8 model on a device: the split through
the firmware built for an emulated board or the x86 container, with the device's accuracy and
whether every output equals the in-process interpreter's bytes."""

from __future__ import annotations

import io
import shutil
import statistics
import time
import uuid
from typing import Any

import numpy as np

from tinymlaas.config import Settings
from tinymlaas.datasets.models import (
    ClassMetrics,
    DeviceRun,
    Evaluation,
    EvaluationRequest,
    Lineage,
    Metrics,
    Split,
    Variant,
)
from tinymlaas.datasets.tensors import fit_input
from tinymlaas.edge.tflm import Tflm, quantize
from tinymlaas.errors import InvalidInput, NotFound
from tinymlaas.jobs import JobRunner, task
from tinymlaas.models import Job, Model
from tinymlaas.models_workers import TaskCall
from tinymlaas.plugins.base import Progress, no_progress
from tinymlaas.store import Store, now


def metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> Metrics:
    """Accuracy, per-class precision and recall (None where undefined), and the confusion matrix."""
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = []
    for i, label in enumerate(classes):
        predicted, actual = int(confusion[:, i].sum()), int(confusion[i, :].sum())
        per_class.append(
            ClassMetrics(
                label=label,
                support=actual,
                precision=round(confusion[i, i] / predicted, 4) if predicted else None,
                recall=round(confusion[i, i] / actual, 4) if actual else None,
            )
        )
    total = int(confusion.sum())
    return Metrics(
        samples=total,
        accuracy=round(float(np.trace(confusion)) / total, 4) if total else 0.0,
        classes=per_class,
        confusion=confusion.tolist(),
    )


def predictions(model: bytes, x: np.ndarray) -> np.ndarray:
    """The class TFLM predicts for each float sample (quantized on the way in for int8 models)."""
    it = Tflm(model)
    return np.array([int(np.argmax(it.invoke_float(row[np.newaxis]))) for row in x], dtype=np.int64)


def confusion_png(per_variant: dict[str, Metrics], classes: list[str], title: str) -> bytes:
    """The confusion matrices side by side, counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(per_variant)
    size = max(3.5, 0.45 * len(classes) + 1.5)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size + 0.6), squeeze=False)
    for ax, (variant, m) in zip(axes[0], per_variant.items(), strict=True):
        grid = np.asarray(m.confusion)
        ax.imshow(grid, cmap="Blues")
        ax.set_title(f"{variant}: accuracy {m.accuracy:.2%} ({m.samples})")
        ax.set_xticks(range(len(classes)), classes, rotation=45 if len(classes) > 6 else 0)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for (r, c), v in np.ndenumerate(grid):
            if v:
                ax.text(
                    c,
                    r,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if v > grid.max() / 2 else "black",
                )
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def evaluate_variants(
    store: Store,
    model: Model,
    lineage: Lineage,
    data: Any,
    split: Split = Split.test,
    limit: int | None = None,
    job_id: str | None = None,
) -> Evaluation:
    """Float vs int8 (the variants the model has) on a split, in process; stored with its plot."""
    x = fit_input(data.x[split][:limit], lineage.input_size)
    y = data.y[split][:limit]
    results = {}
    for variant in (Variant.float, Variant.int8):
        if variant in lineage.variants:
            blob = store.artifacts.get(lineage.variants[variant]).read_bytes()
            results[variant.value] = metrics(y, predictions(blob, x), lineage.classes)
    return _store(
        store,
        model,
        lineage,
        split,
        None,
        results,
        None,
        job_id,
        f"{model.name}:{model.version} on {lineage.dataset}:{lineage.dataset_version} {split.value}",
    )


def _store(
    store: Store,
    model: Model,
    lineage: Lineage,
    split: Split,
    target: str | None,
    results: dict[str, Metrics],
    device: DeviceRun | None,
    job_id: str | None,
    title: str,
) -> Evaluation:
    plot = store.artifacts.put_bytes(confusion_png(results, lineage.classes, title)) if results else None
    return store.datasets.add_evaluation(
        Evaluation(
            id=uuid.uuid4().hex[:12],
            job_id=job_id,
            model_id=model.id,
            dataset_id=lineage.dataset_id,
            dataset_version=lineage.dataset_version,
            split=split,
            target=target,
            metrics=results,
            device=device,
            plot_sha256=plot,
            created_at=now(),
        )
    )


def _subject(store: Store, req: EvaluationRequest) -> tuple[Model, Lineage]:
    """The model and what it is evaluated on: its own lineage, or another dataset version with the
    same classes."""
    from tinymlaas.services.datasets import resolve

    model = store.model(req.model)
    try:
        lineage = store.datasets.lineage(model.id)
    except NotFound:
        if req.dataset is None:
            raise InvalidInput(
                f"model '{req.model}' has no lineage: name the 'dataset' to evaluate it on"
            ) from None
        ds, version = resolve(store, req.dataset)
        shape = model.info.inputs[0].shape[1:] if model.info.inputs else ds.spec.shape
        int8 = bool(model.info.inputs) and model.info.inputs[0].dtype == "int8"
        lineage = Lineage(
            model_id=model.id,
            kind="imported",
            dataset_id=ds.id,
            dataset=ds.name,
            dataset_version=version,
            classes=ds.spec.classes,
            input_size=list(shape),
            variants={Variant.int8 if int8 else Variant.float: model.sha256},
            created_at=now(),
        )
    if req.dataset is not None:
        ds, version = resolve(store, req.dataset)
        if ds.spec.classes != lineage.classes:
            raise InvalidInput(
                f"dataset '{ds.name}' has classes {ds.spec.classes}; the model predicts {lineage.classes}"
            )
        lineage = lineage.model_copy(
            update={"dataset_id": ds.id, "dataset": ds.name, "dataset_version": version}
        )
    outputs = model.info.outputs[0].shape[-1] if model.info.outputs else len(lineage.classes)
    if outputs != len(lineage.classes):
        raise InvalidInput(f"the model has {outputs} outputs; the dataset has {len(lineage.classes)} classes")
    return model, lineage


def start_evaluation(store: Store, settings: Settings, runner: JobRunner, req: EvaluationRequest) -> Job:
    """Checked now (model, dataset, board), run as a job whose result names the evaluation."""
    _subject(store, req)
    if req.target is not None:
        from tinymlaas.targets import get_board

        get_board(settings.targets_dir, req.target)
    job = store.new_job("evaluate")
    runner.submit_task(job, TaskCall(task="evaluate", args={"request": req.model_dump(mode="json"),
                                                            "job_id": job.id}))
    return job


@task("evaluate")
def _evaluate_task(store: Store, settings: Settings, args: dict[str, Any], progress: Progress
                   ) -> dict[str, Any]:
    req = EvaluationRequest.model_validate(args["request"])
    return evaluate(store, settings, req, progress, job_id=args["job_id"]).model_dump(mode="json")


def evaluate(
    store: Store,
    settings: Settings,
    req: EvaluationRequest,
    progress: Progress = no_progress,
    job_id: str | None = None,
) -> Evaluation:
    from tinymlaas.services.training import load_data

    model, lineage = _subject(store, req)
    ds = store.datasets.get(lineage.dataset_id)
    progress(f"loading {ds.name}:{lineage.dataset_version} ({req.split.value})", 0.02)
    data = load_data(store, ds, lineage.dataset_version, (req.split,))
    if not len(data.y[req.split]):
        raise InvalidInput(
            f"dataset '{ds.name}' version {lineage.dataset_version} has no labelled {req.split.value} samples"
        )
    if req.target is None:
        progress("float and int8 in process (TFLM)", 0.2)
        return evaluate_variants(store, model, lineage, data, req.split, req.limit, job_id)
    return _on_device(store, settings, model, lineage, data, req, progress, job_id)


def _on_device(
    store: Store,
    settings: Settings,
    model: Model,
    lineage: Lineage,
    data: Any,
    req: EvaluationRequest,
    progress: Progress,
    job_id: str | None,
) -> Evaluation:
    from tinymlaas.plugins.registry import builder_plugin
    from tinymlaas.services.builds import _c_name
    from tinymlaas.services.compile import compile_model
    from tinymlaas.services.mcu_device import emulator_for
    from tinymlaas.services.pipeline import booted
    from tinymlaas.targets import get_board

    assert req.target is not None
    board = get_board(settings.targets_dir, req.target)
    blob = store.artifacts.get(model.sha256).read_bytes()
    x = fit_input(data.x[req.split][: req.limit], lineage.input_size)
    y = data.y[req.split][: req.limit]
    work = settings.data_dir / "work" / f"evaluate-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    try:
        module = compile_model(
            blob,
            board,
            work / "module",
            name=_c_name(model),
            progress=lambda s, f: progress(f"compile: {s}", 0.05 + f * 0.1),
        )
        builder_plugin(settings.build.executor)().build(
            work / "module",
            board,
            work / "firmware",
            progress=lambda s, f: progress(f"build: {s}", 0.15 + f * 0.25),
        )
        oracle = Tflm(blob)
        spec = module.inputs[0]
        if spec.scale is None or spec.zero_point is None:
            raise InvalidInput("the model's input is not quantized; a device evaluation runs int8 models")
        tensors = [quantize(row, spec.scale, spec.zero_point, np.int8) for row in x]
        emulator = None if board.device is not None else emulator_for(board).name
        predicted, counts, mismatches = [], [], 0
        progress(f"boot {board.name}", 0.4)
        with booted(board, work / "firmware") as (_, infer):
            for i, tensor in enumerate(tensors):
                raw, instructions = infer(tensor)
                want = oracle.invoke(tensor).ravel().tolist()
                mismatches += raw != want
                predicted.append(int(np.argmax(raw)))
                if instructions is not None:
                    counts.append(instructions)
                progress(
                    f"sample {i + 1}/{len(tensors)} on {board.name}", 0.4 + 0.58 * (i + 1) / len(tensors)
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    device = DeviceRun(
        target=board.name,
        emulator=emulator,
        samples=len(tensors),
        bit_exact=mismatches == 0,
        mismatches=mismatches,
        instructions=int(statistics.median(counts)) if counts else None,
        seconds=round(time.monotonic() - start, 2),
    )
    results = {"device": metrics(y, np.asarray(predicted, dtype=np.int64), lineage.classes)}
    return _store(
        store,
        model,
        lineage,
        req.split,
        board.name,
        results,
        device,
        job_id,
        f"{model.name}:{model.version} on {board.name}, {lineage.dataset}:{lineage.dataset_version} "
        f"{req.split.value}",
    )


def evaluations(store: Store, model: str | None) -> list[Evaluation]:
    """The newest evaluations, of one model version when named."""
    return store.datasets.evaluations(store.model(model).id if model else None)
