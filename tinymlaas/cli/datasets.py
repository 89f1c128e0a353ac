"""The data scientist's commands, on this host's database (as ``users``): ``datasets`` (create,
upload, label, browse, versions, sample data), ``train`` (run with settings, list, show, import a
Keras model), ``evaluate`` (float vs int8, or on a device) and ``profile`` (a model across boards)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from tinymlaas.config import get_settings
from tinymlaas.errors import InvalidInput

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")

datasets_app = typer.Typer(no_args_is_help=True, help="Datasets: samples, labels, versions, sample data.")
train_app = typer.Typer(
    no_args_is_help=True, help="Train models on datasets with settings; import Keras models."
)
evaluate_app = typer.Typer(no_args_is_help=True, help="Evaluate a model: float vs int8, or on a device.")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``tinymlaas`` app."""
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(train_app, name="train")
    app.add_typer(evaluate_app, name="evaluate")
    app.command("profile")(profile)



def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise InvalidInput(f"{what}: '{text}' is not a list of integers like 8,8,1") from None


def _request(cls: type[M], **fields: Any) -> M:
    """A request record from options; a bad value is one line naming its option."""
    from pydantic import ValidationError

    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
        raise InvalidInput(f"--{option}: {first['msg']}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


# -- datasets ---------------------------------------------------------------------------------


@datasets_app.command("create")
def create(
    name: str,
    task: Annotated[str, typer.Option(help="image, time-series or tabular")],
    shape: Annotated[str, typer.Option(help="sample shape: H,W,C (image), LENGTH,CHANNELS, FEATURES")],
    classes: Annotated[str, typer.Option(help="comma-separated class names")],
    dtype: Annotated[str, typer.Option(help="uint8, int16 or float32")] = "float32",
    sample_rate: Annotated[
        int | None, typer.Option(help="audio: the sample rate WAV files must have")
    ] = None,
    features: Annotated[str | None, typer.Option(help="tabular: comma-separated CSV column names")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a dataset for a task with a sample spec."""
    from pydantic import ValidationError

    from tinymlaas.datasets.models import DatasetCreate
    from tinymlaas.services import datasets as service

    try:
        req = DatasetCreate.model_validate(
            {
                "name": name,
                "task": task,
                "spec": {
                    "shape": _ints(shape, "shape"),
                    "dtype": dtype,
                    "classes": _names(classes),
                    "sample_rate": sample_rate,
                    "features": _names(features) if features else None,
                },
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(map(str, first['loc'])) or 'dataset'}: {first['msg']}") from None
    with local_store() as store:
        ds = service.create(store, req)
    if as_json:
        print_json(ds)
        return
    out.print(
        f"created {ds.task.value} dataset '{ds.name}': samples {ds.spec.shape} {ds.spec.dtype}, "
        f"classes {', '.join(ds.spec.classes)}"
    )


@datasets_app.command("list")
def list_datasets(as_json: JsonOpt = False) -> None:
    """Datasets with their sample counts."""
    with local_store() as store:
        rows = [(ds, store.datasets.counts(ds.id, ds.head)) for ds in store.datasets.all()]
    if as_json:
        print_json([{**ds.model_dump(mode="json"), "counts": c.model_dump()} for ds, c in rows])
        return
    table = Table("dataset", "task", "shape", "classes", "version", "samples", "unlabelled")
    for ds, c in rows:
        table.add_row(
            ds.name,
            ds.task.value,
            "x".join(map(str, ds.spec.shape)),
            str(len(ds.spec.classes)),
            str(ds.head),
            f"{c.total:,}",
            f"{c.unlabelled:,}",
        )
    out.print(table)


@datasets_app.command("show")
def show(ref: str, as_json: JsonOpt = False) -> None:
    """A dataset: counts per label and split, and its versions (locked once a model was made)."""
    from tinymlaas.services import datasets as service

    with local_store() as store:
        detail = service.detail(store, ref)
    if as_json:
        print_json(detail)
        return
    c = detail.counts
    out.print(
        f"[bold]{detail.name}[/] ({detail.task.value}, {detail.spec.shape} {detail.spec.dtype}): "
        f"{c.total:,} samples, {c.unlabelled:,} unlabelled; split {c.splits}"
    )
    table = Table("label", "samples")
    for label, n in c.labels.items():
        table.add_row(label, f"{n:,}")
    out.print(table)
    versions = Table("version", "locked", "samples", "models")
    for v in detail.versions:
        versions.add_row(
            str(v.version), "yes" if v.locked else "", f"{v.counts.total:,}", ", ".join(v.models)
        )
    out.print(versions)


@datasets_app.command("upload")
def upload(
    ref: str,
    files: Annotated[list[Path], typer.Argument(help="PNG/JPEG, WAV, CSV, NPY files or zip/tar archives")],
    label: Annotated[str | None, typer.Option(help="the label of every sample")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add samples; bad ones are refused one by one with the reason, the rest are kept."""
    from tinymlaas.services import datasets as service

    for f in files:
        if not f.is_file():
            raise InvalidInput(f"no such file: {f}")
    with local_store() as store, ExitStack() as stack:
        opened = [(f.name, stack.enter_context(f.open("rb"))) for f in files]
        result = service.upload(store, ref, opened, label=label)
    if as_json:
        print_json(result)
        return
    out.print(
        f"added {len(result.accepted):,} sample(s) to '{result.dataset}' version {result.version}; "
        f"refused {len(result.refused):,}"
    )
    if result.refused:
        table = Table("refused", "why")
        for r in result.refused:
            table.add_row(r.name, r.reason)
        out.print(table)


@datasets_app.command("samples")
def samples(
    ref: Annotated[str, typer.Argument(help="dataset (name, or name:version)")],
    label: Annotated[str | None, typer.Option(help="only this label")] = None,
    unlabelled: Annotated[bool, typer.Option("--unlabelled", help="only unlabelled samples")] = False,
    split: Annotated[str | None, typer.Option(help="train, validation or test")] = None,
    source: Annotated[str | None, typer.Option(help="sources starting with this, e.g. device:")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Browse samples, a page at a time, filtered by label, unlabelled, split or source."""
    from tinymlaas.datasets.models import Split
    from tinymlaas.services import datasets as service

    try:
        part = Split(split) if split else None
    except ValueError:
        raise InvalidInput(f"split: '{split}' is none of train, validation, test") from None
    with local_store() as store:
        result = service.browse(
            store,
            ref,
            label=label,
            unlabelled=unlabelled,
            split=part,
            source=source,
            offset=(page - 1) * limit,
            limit=limit,
        )
    if as_json:
        print_json(result)
        return
    pages = max(1, -(-result.total // limit))
    table = Table(
        "sample",
        "label",
        "split",
        "version",
        "source",
        title=f"page {page} of {pages} ({result.total:,} samples)",
    )
    for s in result.items:
        table.add_row(s.id, s.label or "[dim]unlabelled[/]", s.split.value, str(s.version), s.source)
    out.print(table)


@datasets_app.command("label")
def label(
    ref: str,
    sample_ids: Annotated[list[str], typer.Argument(help="the samples to label")],
    to: Annotated[str | None, typer.Option("--label", help="the label to give")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="make them unlabelled")] = False,
) -> None:
    """Label (or relabel, or with --clear unlabel) one or many samples."""
    from tinymlaas.services import datasets as service

    if (to is None) == (not clear):
        raise InvalidInput("give --label LABEL or --clear")
    with local_store() as store:
        changed = service.set_label(store, ref, sample_ids, None if clear else to)
    out.print(f"{changed.changed} sample(s) changed in '{changed.dataset}' version {changed.version}")


@datasets_app.command("generate")
def generate(
    kind: Annotated[str, typer.Argument(help="digits, tones, gestures or iris")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the archive (or CSV) to write")],
    count: Annotated[int, typer.Option(help="digits: images in all; tones, gestures: per class")] = 0,
    seed: int = 0,
    create: Annotated[str | None, typer.Option(help="also create this dataset and upload the data")] = None,
) -> None:
    """Sample data without downloads: scikit-learn's digits, synthesized tones and gestures, iris."""
    from tinymlaas.datasets.models import DatasetCreate
    from tinymlaas.datasets.samples import EXAMPLES
    from tinymlaas.services import datasets as service

    if kind not in EXAMPLES:
        raise InvalidInput(f"no sample data '{kind}'; there are {', '.join(EXAMPLES)}")
    ex = EXAMPLES[kind]
    n = ex.write(output, count, seed)
    out.print(f"wrote {output}: {n:,} samples ({ex.description})")
    if create is None:
        shape = ",".join(map(str, ex.spec.shape))
        out.print(
            f"dataset spec: --task {ex.task.value} --shape {shape} --dtype {ex.spec.dtype} "
            f"--classes {','.join(ex.spec.classes)}"
        )
        return
    with local_store() as store, output.open("rb") as fh:
        service.create(store, DatasetCreate(name=create, task=ex.task, spec=ex.spec))
        result = service.upload(store, create, [(output.name, fh)])
    out.print(f"created '{create}' with {len(result.accepted):,} samples ({len(result.refused)} refused)")


# -- training ---------------------------------------------------------------------------------


@train_app.command("run")
def train_run(
    dataset: Annotated[str, typer.Argument(help="dataset (name, or name:version)")],
    name: Annotated[str | None, typer.Option(help="model name (default: the dataset's)")] = None,
    template: Annotated[str | None, typer.Option(help="cnn, ds-cnn or mlp (default: the task's)")] = None,
    input_size: Annotated[str | None, typer.Option(help="images: H,W; time series: LENGTH")] = None,
    width: Annotated[int, typer.Option(help="filters (units) of the first layer")] = 16,
    epochs: int = 20,
    batch_size: int = 32,
    learning_rate: float = 0.005,
    optimizer: Annotated[str, typer.Option(help="adam, sgd or rmsprop")] = "adam",
    loss: Annotated[str, typer.Option(help="crossentropy or focal")] = "crossentropy",
    label_smoothing: float = 0.0,
    augmentation: Annotated[bool, typer.Option("--augmentation/--no-augmentation")] = False,
    seed: int = 1,
    base: Annotated[str | None, typer.Option(help="continue training this model version")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a model on a dataset version with these settings; float and int8 models, evaluated."""
    from tinymlaas.datasets.models import TrainingSettings
    from tinymlaas.services.training import train_now

    req = _request(
        TrainingSettings,
        dataset=dataset, name=name, template=template,
        input_size=_ints(input_size, "input-size") if input_size else None,
        width=width, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, optimizer=optimizer,
        loss=loss, label_smoothing=label_smoothing, augmentation=augmentation, seed=seed, base=base,
    )
    settings = get_settings()
    with local_store() as store:
        with progress_bar(f"train {dataset}") as report:
            result = train_now(store, settings, req, report)
        training = store.datasets.training(result["training_id"])
    if as_json:
        print_json({**result, "epochs": training.epochs})
        return
    table = Table("epoch", "loss", "accuracy", "val loss", "val accuracy", "seconds")
    for e in training.epochs:
        table.add_row(
            str(e.epoch),
            f"{e.loss:.4f}",
            f"{e.accuracy:.4f}",
            "" if e.val_loss is None else f"{e.val_loss:.4f}",
            "" if e.val_accuracy is None else f"{e.val_accuracy:.4f}",
            f"{e.seconds:.2f}",
        )
    out.print(table)
    acc = result["accuracy"]
    out.print(
        f"model '{result['name']}' version {result['version']} ({result['model_id']}) in "
        f"{result['seconds']} s; test accuracy float {acc.get('float', 0):.2%}, int8 {acc.get('int8', 0):.2%}"
    )


@train_app.command("list")
def train_list(as_json: JsonOpt = False) -> None:
    """Training runs, newest first."""
    with local_store() as store:
        runs = store.datasets.trainings()
    if as_json:
        print_json(runs)
        return
    table = Table("training", "state", "dataset", "version", "epochs", "model", "seconds")
    for t in runs:
        table.add_row(
            t.id,
            t.state.value,
            t.settings.dataset,
            str(t.dataset_version),
            f"{len(t.epochs)}/{t.settings.epochs}",
            t.model_id or "",
            str(t.seconds or ""),
        )
    out.print(table)


@train_app.command("import")
def train_import(
    file: Annotated[Path, typer.Argument(help=".keras, .h5, or a SavedModel folder zipped")],
    name: Annotated[str, typer.Option(help="the model's name")],
    dataset: Annotated[str | None, typer.Option(help="calibrates int8; evaluated on its test split")] = None,
    quantize: Annotated[str, typer.Option(help="int8 or float")] = "int8",
    as_json: JsonOpt = False,
) -> None:
    """Bring your own Keras model: convert it to int8 (or float) TFLite and register it."""
    from tinymlaas.services.training import KERAS_SUFFIXES, import_now

    if not file.is_file():
        raise InvalidInput(f"no such file: {file}")
    if not file.name.lower().endswith(KERAS_SUFFIXES):
        raise InvalidInput(f"'{file.name}' is not a Keras model (.keras, .h5) or a zipped SavedModel")
    settings = get_settings()
    with local_store() as store, file.open("rb") as fh, progress_bar(f"import {file.name}") as report:
        result = import_now(
            store,
            settings,
            name=name,
            filename=file.name,
            body=fh,
            dataset=dataset,
            quantize=quantize,
            progress=report,
        )
    if as_json:
        print_json(result)
        return
    out.print(
        f"model '{result['name']}' version {result['version']} ({result['model_id']})"
        + (f"; test accuracy {result['accuracy']}" if "accuracy" in result else "")
    )


# -- evaluation -------------------------------------------------------------------------------


def _evaluation_table(ev: Any) -> None:
    for variant, m in ev.metrics.items():
        table = Table(
            "class",
            "precision",
            "recall",
            "support",
            title=f"{variant}: accuracy {m.accuracy:.2%} on {m.samples} samples",
        )
        for c in m.classes:
            table.add_row(
                c.label,
                "" if c.precision is None else f"{c.precision:.3f}",
                "" if c.recall is None else f"{c.recall:.3f}",
                str(c.support),
            )
        out.print(table)
    if ev.device is not None:
        d = ev.device
        out.print(
            f"device {d.target} ({d.emulator or 'container'}): {d.samples} samples, outputs "
            f"{'equal to' if d.bit_exact else f'differ in {d.mismatches} from'} the in-process "
            f"interpreter's bytes"
            + (f"; {d.instructions:,} instructions per inference" if d.instructions else "")
        )


def _evaluate(req: Any, plot: Path | None, as_json: bool) -> None:
    from tinymlaas.services.evaluation import evaluate

    settings = get_settings()
    with local_store() as store:
        with progress_bar("evaluate") as report:
            ev = evaluate(store, settings, req, report)
        if plot is not None and ev.plot_sha256:
            plot.write_bytes(store.artifacts.get(ev.plot_sha256).read_bytes())
    if as_json:
        print_json(ev)
        return
    _evaluation_table(ev)
    if plot is not None:
        out.print(f"confusion matrices: {plot}")


@evaluate_app.command("model")
def evaluate_model(
    model: Annotated[str, typer.Argument(help="model version (id, name, name:version)")],
    dataset: Annotated[str | None, typer.Option(help="default: the version it was made from")] = None,
    split: str = "test",
    limit: int | None = None,
    plot: Annotated[Path | None, typer.Option(help="write the confusion matrices here (PNG)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Float vs int8 on a split: accuracy, per-class precision and recall, confusion matrices."""
    from tinymlaas.datasets.models import EvaluationRequest

    _evaluate(
        _request(EvaluationRequest, model=model, dataset=dataset, split=split, limit=limit),
        plot,
        as_json,
    )


@evaluate_app.command("device")
def evaluate_device(
    model: Annotated[str, typer.Argument(help="model version (id, name, name:version)")],
    target: Annotated[str, typer.Option("--target", "-t", help="a board: emulated MCU or x86-tflm")],
    dataset: Annotated[str | None, typer.Option(help="default: the version it was made from")] = None,
    split: str = "test",
    limit: int | None = None,
    plot: Annotated[Path | None, typer.Option(help="write the confusion matrix here (PNG)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The split through the firmware built for a board: the device's accuracy, and whether its
    outputs equal the in-process interpreter's bytes."""
    from tinymlaas.datasets.models import EvaluationRequest
    from tinymlaas.images import ensure_all

    settings = get_settings()
    with progress_bar("images") as report:
        ensure_all(settings, progress=report)
    _evaluate(
        _request(EvaluationRequest, model=model, dataset=dataset, split=split, limit=limit, target=target),
        plot,
        as_json,
    )


# -- profile ----------------------------------------------------------------------------------


def profile(
    model: Annotated[str, typer.Argument(help="a .tflite file, or a registered model version")],
    target: Annotated[list[str], typer.Option("--target", "-t", help="boards (default: all)")] = [],  # noqa: B006
    plot: Annotated[Path | None, typer.Option(help="write the latency plot here (PNG)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A model across boards: fits (flash, RAM with the planned arena), instructions per inference
    on the emulator, and the latency that implies at the board's clock."""
    from tinymlaas.images import ensure_all
    from tinymlaas.services.profile import boards_for
    from tinymlaas.services.profile import plot as draw
    from tinymlaas.services.profile import profile as run_profile

    settings = get_settings()
    boards = boards_for(settings, target or None)
    path = Path(model)
    model_id = None
    if path.suffix == ".tflite" or path.is_file():
        data = read_model_file(path)
    else:
        with local_store() as store:
            rec = store.model(model)
            data, model_id = store.artifacts.get(rec.sha256).read_bytes(), rec.id
    with progress_bar("images") as report:
        ensure_all(settings, progress=report)
    with progress_bar("profile") as report:
        result = run_profile(settings, data, boards, model_id=model_id, progress=report)
    if plot is not None:
        plot.write_bytes(draw(result, f"{path.name if model_id is None else model} across boards"))
    if as_json:
        print_json(result)
        return
    table = Table(
        "board",
        "cpu",
        "MHz",
        "fits",
        "flash",
        "RAM",
        "arena",
        "instructions",
        "latency ms",
        "note",
        title=f"profile of {model} ({result.seconds:.1f} s)",
    )
    for r in result.boards:
        table.add_row(
            r.board,
            r.cpu,
            f"{r.clock_hz / 1e6:g}" if r.clock_hz else "",
            "yes" if r.fits else "[red]no[/]",
            f"{r.flash_bytes:,} / {r.flash_total:,}"
            if r.flash_bytes is not None
            else f"- / {r.flash_total:,}",
            f"{r.ram_bytes:,} / {r.ram_total:,}" if r.ram_bytes is not None else f"- / {r.ram_total:,}",
            f"{r.arena_bytes:,}" if r.arena_bytes is not None else "",
            f"{r.instructions:,}" if r.instructions else "",
            f"{r.latency_ms:g}" if r.latency_ms is not None else "",
            r.reason or r.measured,
        )
    out.print(table)
    if plot is not None:
        out.print(f"plot: {plot}")


# The shared CLI helpers, imported last: tinymlaas.cli.main imports this module at its end to register
# these commands, and `python -m tinymlaas.cli.main` imports main a second time through here; by then
# every command above is defined, and typer reads the annotations only when the app runs.
from tinymlaas.cli.main import JsonOpt, local_store, out, print_json, progress_bar, read_model_file  # noqa: E402
