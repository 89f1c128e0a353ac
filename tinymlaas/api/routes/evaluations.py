"""Evaluations: float vs int8 on a dataset split, or a model on a device (emulated board, x86)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from tinymlaas.api.deps import RunnerDep, SettingsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Scientist, Viewer
from tinymlaas.datasets.models import Evaluation, EvaluationRequest
from tinymlaas.errors import NotFound
from tinymlaas.models import Job
from tinymlaas.services import evaluation as service

router = APIRouter(prefix="/evaluations", tags=["evaluations"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 422))
def start_evaluation(
    body: EvaluationRequest, store: StoreDep, settings: SettingsDep, runner: RunnerDep, user: Scientist
) -> Job:
    """A job; its result is the evaluation (accuracy, per-class precision/recall, confusion matrix)."""
    return service.start_evaluation(store, settings, runner, body)


@router.get("", responses=problems(404))
def list_evaluations(store: StoreDep, user: Viewer, model: str | None = None) -> list[Evaluation]:
    return service.evaluations(store, model)


@router.get("/{evaluation_id}", responses=problems(404))
def read_evaluation(evaluation_id: str, store: StoreDep, user: Viewer) -> Evaluation:
    return store.datasets.evaluation(evaluation_id)


@router.get("/{evaluation_id}/confusion.png", response_class=Response, responses=problems(404))
def confusion_plot(evaluation_id: str, store: StoreDep, user: Viewer) -> Response:
    rec = store.datasets.evaluation(evaluation_id)
    if rec.plot_sha256 is None:
        raise NotFound(f"evaluation '{evaluation_id}' has no plot")
    return Response(store.artifacts.get(rec.plot_sha256).read_bytes(), media_type="image/png")
