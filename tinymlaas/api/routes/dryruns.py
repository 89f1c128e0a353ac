"""The CTO's dry-runs run by the service: start one on chosen boards, watch its steps, past runs."""

from __future__ import annotations

from fastapi import APIRouter, status

from tinymlaas.api.deps import RunnerDep, SettingsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Operator, Viewer
from tinymlaas.models_dryrun import DryRun, DryRunRequest
from tinymlaas.services import dryrun as service

router = APIRouter(prefix="/dryruns", tags=["dry-runs"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 422))
def start_dry_run(body: DryRunRequest, store: StoreDep, settings: SettingsDep, runner: RunnerDep,
                  user: Operator) -> DryRun:
    """The whole lifecycle (train, build, join, infer, FOTA, SOTA) on each board, as a job; unknown
    boards are refused now."""
    return service.start_dry_run(store, settings, runner, body)


@router.get("")
def list_dry_runs(store: StoreDep, user: Viewer) -> list[DryRun]:
    return service.dry_runs(store)


@router.get("/{run_id}", responses=problems(404))
def read_dry_run(run_id: str, store: StoreDep, user: Viewer) -> DryRun:
    return service.dry_run_record(store, run_id)
