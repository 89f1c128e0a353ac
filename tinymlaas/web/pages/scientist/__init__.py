"""The data scientist's pages: datasets (thumbnails or waveforms, upload, labelling by keyboard),
training with its settings and a live loss/accuracy chart, a model's evaluation report (float vs
int8 vs device, confusion matrices) and its profile across boards."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from tinymlaas.api.deps import RunnerDep, SettingsDep, StoreDep
from tinymlaas.api.security import Scientist, Viewer
from tinymlaas.auth import Role, User
from tinymlaas.datasets.models import (
    DEFAULT_TEMPLATE,
    DatasetCreate,
    EvaluationRequest,
    Lineage,
    Metrics,
    ProfileRequest,
    SampleSpec,
    Split,
    Task,
    Training,
    TrainingSettings,
    TrainingState,
)
from tinymlaas.datasets.tensors import npy_load
from tinymlaas.errors import InvalidInput, NotFound
from tinymlaas.models import Model
from tinymlaas.services import datasets as service
from tinymlaas.services import evaluation as evaluations
from tinymlaas.services import profile as profiles
from tinymlaas.services import training as trainings
from tinymlaas.store import Store
from tinymlaas.targets import load_boards
from tinymlaas.web.forms import fields, numbers, record, words
from tinymlaas.web.pages.scientist.plots import picture
from tinymlaas.web.session import PageError, PageViewer
from tinymlaas.web.site import Link, Section, fragment, page, render
from tinymlaas.web.sse import DONE, event, stream

router = APIRouter(prefix="/ui/scientist", include_in_schema=False)
SCIENTIST = frozenset({Role.data_scientist, Role.operator})
#: Samples on one page of the grid.
PAGE = 60
#: The keys that label with a class (see :func:`class_keys`).
KEYS = "1234567890"
ENDED = (TrainingState.succeeded, TrainingState.failed, TrainingState.cancelled)
Show = Annotated[str, Form(max_length=1100)]
SplitField = Literal["", "train", "validation", "test"]


def _may(user: User) -> bool:
    return user.role.allows(SCIENTIST)


def _page_or_404(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except NotFound as exc:
        raise PageError(exc) from None


# -- datasets -------------------------------------------------------------------------------------

@router.get("/datasets")
async def datasets_page(request: Request, user: PageViewer, store: StoreDep) -> HTMLResponse:
    def data() -> list[tuple[Any, Any]]:
        return [(d, store.datasets.counts(d.id, d.head)) for d in store.datasets.all()]

    rows = await asyncio.to_thread(data)
    return page(request, user, "scientist/datasets.html", title="Datasets", rows=rows, tasks=list(Task),
                can_change=_may(user))


@router.post("/datasets")
async def create_dataset(request: Request, user: Scientist, store: StoreDep) -> Response:
    """The same record and checks as POST /datasets; the browser then opens the new dataset."""
    f = await fields(request)
    spec = record(SampleSpec, shape=numbers(f.get("shape", ""), "shape"), dtype=f.get("dtype"),
                  classes=words(f.get("classes", "")))
    body = record(DatasetCreate, name=f.get("name"), task=f.get("task"),
                  spec=spec.model_dump(exclude_none=True), description=f.get("description"))
    ds = await asyncio.to_thread(service.create, store, body)
    return Response(status_code=204, headers={"HX-Redirect": f"/ui/scientist/datasets/{ds.name}"})


def _show(show: str) -> tuple[str | None, bool]:
    """The grid's filter: '' all, 'unlabelled', or 'label:NAME'."""
    if show == "unlabelled":
        return None, True
    return (show[6:], False) if show.startswith("label:") else (None, False)


def class_keys(classes: list[str]) -> dict[str, str]:
    """The key that labels with each class: a class named by a digit has that digit (the digits
    0-9 are keys 0-9), the others the free digits in class order (ten classes at most have one)."""
    keys = {c: c for c in classes if len(c) == 1 and c in KEYS}
    free = [k for k in KEYS if k not in keys.values()]
    for c in classes:
        if c not in keys and free:
            keys[c] = free.pop(0)
    return keys


def _grid(store: Store, ref: str, show: str, split: str, offset: int) -> dict[str, Any]:
    ds, _ = service.resolve(store, ref)
    label, unlabelled = _show(show)
    samples = service.browse(store, ref, label=label, unlabelled=unlabelled,
                             split=Split(split) if split else None, offset=offset, limit=PAGE)
    pictures = {}
    if ds.task is not Task.image:
        for s in samples.items:
            pictures[s.id] = picture(ds.task, npy_load(store.artifacts.get(s.sha256).read_bytes()))
    return {"ds": ds, "ref": ref, "samples": samples, "pictures": pictures, "show": show, "split": split,
            "keys": class_keys(ds.spec.classes), "page_size": PAGE,
            "counts": store.datasets.counts(ds.id, ds.head)}


@router.get("/datasets/{ref}")
async def dataset_page(request: Request, ref: str, user: PageViewer, store: StoreDep) -> HTMLResponse:
    def data() -> dict[str, Any]:
        return {"detail": service.detail(store, ref), **_grid(store, ref, "", "", 0)}

    return page(request, user, "scientist/dataset.html", title=f"Dataset {ref}",
                **await asyncio.to_thread(_page_or_404, data), can_change=_may(user))


@router.get("/datasets/{ref}/rows")
async def dataset_rows(ref: str, user: Viewer, store: StoreDep, show: str = "", split: SplitField = "",
                       offset: int = 0) -> HTMLResponse:
    """One page of the sample grid for the filters (htmx swaps it)."""
    grid = await asyncio.to_thread(_grid, store, ref, show, split, max(offset, 0))
    return fragment("scientist/_samples.html", can_change=_may(user), refresh=True, **grid)


@router.patch("/datasets/{ref}/labels")
def label_samples(ref: str, user: Scientist, store: StoreDep,
                  samples: Annotated[list[str] | None, Form()] = None,
                  label: Annotated[str, Form(max_length=200)] = "", show: Show = "",
                  split: Annotated[SplitField, Form()] = "", offset: Annotated[int, Form(ge=0)] = 0
                  ) -> HTMLResponse:
    """The same call as PATCH /datasets/{ref}/samples (an empty label unlabels); the grid again."""
    if not samples:
        raise InvalidInput("select the samples to label first (space, or 'a' for the whole page)")
    changed = service.set_label(store, ref, samples, label or None)
    grid = _grid(store, ref, show, split, offset)
    if offset and offset >= grid["samples"].total:  # the page emptied (its samples left the filter)
        grid = _grid(store, ref, show, split, max(0, offset - PAGE))
    return fragment("scientist/_samples.html", can_change=True, changed=changed, refresh=True, **grid)


@router.post("/datasets/{ref}/upload")
def upload(ref: str, user: Scientist, store: StoreDep, files: Annotated[list[UploadFile], File()],
           label: Annotated[str, Form(max_length=200)] = "") -> HTMLResponse:
    """The same call as POST /datasets/{ref}/samples; the grid reloads itself."""
    named = [(f.filename or "upload", f.file) for f in files]
    result = service.upload(store, ref, named, label=label or None)
    html = render("scientist/_upload.html", result=result)
    return HTMLResponse(html, headers={"HX-Trigger": "samples-changed"})


# -- training -------------------------------------------------------------------------------------

def _chart(t: Training) -> dict[str, Any]:
    """Loss (left axis) and accuracy (right axis, 0 to 1) per epoch, validation dashed."""
    e = t.epochs

    def line(label: str, values: list[float | None], color: str, axis: str, dashed: bool) -> dict[str, Any]:
        return {"label": label, "data": values, "color": color, "yAxisID": axis, "pointRadius": 2,
                "borderDash": [5, 4] if dashed else [], "fill": False}

    return {"type": "line", "data": {"labels": [r.epoch for r in e], "datasets": [
        line("loss", [r.loss for r in e], "#dc2626", "loss", False),
        line("validation loss", [r.val_loss for r in e], "#dc2626", "loss", True),
        line("accuracy", [r.accuracy for r in e], "#2563eb", "acc", False),
        line("validation accuracy", [r.val_accuracy for r in e], "#2563eb", "acc", True)]},
        "options": {"scales": {
            "x": {"title": {"display": True, "text": "epoch"}},
            "loss": {"type": "linear", "position": "left", "beginAtZero": True,
                     "title": {"display": True, "text": "loss"}},
            "acc": {"type": "linear", "position": "right", "min": 0, "max": 1,
                    "grid": {"drawOnChartArea": False}, "title": {"display": True, "text": "accuracy"}}}}}


def _training_view(store: Store, training_id: str) -> dict[str, Any]:
    t = store.datasets.training(training_id)
    return {"t": t, "job": store.job(t.job_id), "chart_spec": _chart(t), "ended": t.state in ENDED,
            "dataset": store.datasets.get(t.dataset_id)}


@router.get("/trainings")
async def trainings_page(request: Request, user: PageViewer, store: StoreDep) -> HTMLResponse:
    def data() -> dict[str, Any]:
        sets = store.datasets.all()
        return {"runs": store.datasets.trainings(), "datasets": sets,
                "names": {d.id: d.name for d in sets}, "defaults": TrainingSettings(dataset="-")}

    return page(request, user, "scientist/trainings.html", title="Training", can_change=_may(user),
                default_templates={t.value: v for t, v in DEFAULT_TEMPLATE.items()},
                **await asyncio.to_thread(data))


@router.post("/trainings")
async def start_training(request: Request, user: Scientist, store: StoreDep, settings: SettingsDep,
                         runner: RunnerDep) -> Response:
    """The same settings, checks and job as POST /trainings; the browser then watches it."""
    f = await fields(request)
    if "augmentation" in f:
        f["augmentation"] = True
    body = record(TrainingSettings, **f)
    t = await asyncio.to_thread(trainings.start_training, store, settings, runner, body)
    return Response(status_code=204, headers={"HX-Redirect": f"/ui/scientist/trainings/{t.id}"})


@router.get("/trainings/{training_id}")
async def training_page(request: Request, training_id: str, user: PageViewer, store: StoreDep
                        ) -> HTMLResponse:
    view = await asyncio.to_thread(_page_or_404, _training_view, store, training_id)
    return page(request, user, "scientist/training.html", title=f"Training {training_id}",
                can_change=_may(user), **view)


@router.get("/trainings/{training_id}/events")
async def training_events(request: Request, training_id: str, user: Viewer, store: StoreDep
                          ) -> StreamingResponse:
    """The run again after every epoch (and state change), until it ends."""
    await asyncio.to_thread(store.datasets.training, training_id)  # 404 before the stream starts
    last = ""

    async def poll() -> list[str]:
        nonlocal last
        view = await asyncio.to_thread(_training_view, store, training_id)
        key = f"{view['t'].state}{len(view['t'].epochs)}{view['job'].step}"
        if key == last:
            return []
        last = key
        out = [event("training", render("scientist/_training.html", **view))]
        return [*out, DONE] if view["ended"] else out

    return stream(request, poll, every_s=0.5)


@router.post("/trainings/{training_id}/cancel")
def cancel_training(training_id: str, user: Scientist, store: StoreDep, runner: RunnerDep) -> HTMLResponse:
    trainings.cancel_training(store, runner, training_id)
    return fragment("scientist/_cancelled.html")


# -- models: evaluation report and profile --------------------------------------------------------

def _trained(store: Store) -> list[tuple[Model, Lineage | None]]:
    out: list[tuple[Model, Lineage | None]] = []
    for m in store.models():
        try:
            out.append((m, store.datasets.lineage(m.id)))
        except NotFound:
            out.append((m, None))
    return out


@router.get("/models")
async def models_page(request: Request, user: PageViewer, store: StoreDep) -> HTMLResponse:
    rows = await asyncio.to_thread(_trained, store)
    return page(request, user, "scientist/models.html", title="Evaluation", rows=rows[::-1])


def _comparison(lineage: Any, evals: list[Any]) -> list[dict[str, Any]]:
    """Float vs int8 vs device: every accuracy measured for the model, newest evaluation first."""
    rows: list[dict[str, Any]] = []
    for e in evals:
        for variant, m in e.metrics.items():
            where = f"on {e.target}" if variant == "device" else "in process (TFLM)"
            rows.append({"variant": variant, "where": where, "split": e.split.value, "metrics": m,
                         "device": e.device if variant == "device" else None, "source": f"evaluation {e.id}",
                         "at": e.created_at})
    if lineage is not None:
        for variant, m in lineage.metrics.items():
            rows.append({"variant": variant, "where": "in process (TFLM), at training", "split": "test",
                         "metrics": m, "device": None, "source": "lineage", "at": lineage.created_at})
    return rows


def _confusions(lineage: Any, evals: list[Any]) -> list[tuple[str, Metrics]]:
    """The newest confusion matrix of each variant (float, int8, each device board)."""
    seen: dict[str, Metrics] = {}
    for e in evals:
        for variant, m in e.metrics.items():
            seen.setdefault(f"{variant} on {e.target}" if variant == "device" else variant, m)
    for variant, m in (lineage.metrics.items() if lineage else []):
        seen.setdefault(variant, m)
    return list(seen.items())


@router.get("/models/{ref}")
async def model_page(request: Request, ref: str, user: PageViewer, store: StoreDep, settings: SettingsDep
                     ) -> HTMLResponse:
    def data() -> dict[str, Any]:
        model = store.model(ref)
        try:
            lineage = store.datasets.lineage(model.id)
        except NotFound:
            lineage = None
        evals = evaluations.evaluations(store, model.id)
        latest = store.cost.profiles(model.id, limit=1)
        return {"model": model, "lineage": lineage, "evals": evals, "rows": _comparison(lineage, evals),
                "confusions": _confusions(lineage, evals), "profile": latest[0] if latest else None,
                "boards": list(load_boards(settings.targets_dir).values())}

    return page(request, user, "scientist/model.html", title=f"Model {ref}", can_change=_may(user),
                **await asyncio.to_thread(_page_or_404, data))


@router.post("/models/{ref}/evaluations")
def start_evaluation(ref: str, user: Scientist, store: StoreDep, settings: SettingsDep, runner: RunnerDep,
                     target: Annotated[str, Form(max_length=100)] = "",
                     split: Annotated[Split, Form()] = Split.test,
                     limit: Annotated[int | None, Form(ge=1, le=100_000)] = None) -> HTMLResponse:
    """The same checks and job as POST /evaluations (``target``: on that board's device)."""
    job = evaluations.start_evaluation(store, settings, runner, EvaluationRequest(
        model=ref, split=split, target=target or None, limit=limit))
    return fragment("scientist/_job.html", job=job, what="the evaluation")


@router.post("/models/{ref}/profiles")
def start_profile(ref: str, user: Scientist, store: StoreDep, settings: SettingsDep, runner: RunnerDep,
                  targets: Annotated[list[str] | None, Form()] = None) -> HTMLResponse:
    """The same checks and job as POST /profiles (no board chosen: every board)."""
    job = profiles.start_profile(store, settings, runner, ProfileRequest(model=ref, targets=targets or None))
    return fragment("scientist/_job.html", job=job, what="the profile")


section = Section(
    name="scientist", title="Data science", router=router, order=25,
    templates=Path(__file__).parent / "templates",
    links=(Link("Datasets", "/ui/scientist/datasets"), Link("Training", "/ui/scientist/trainings"),
           Link("Evaluation", "/ui/scientist/models")))
