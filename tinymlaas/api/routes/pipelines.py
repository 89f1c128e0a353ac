"""ML pipelines: a pipeline file validated (every problem with its line), run as a job graph,
followed stage by stage, cancelled, re-run from the stage that failed or was cancelled."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, status

from tinymlaas.api.deps import RolloutsDep, RunnerDep, SettingsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Operator, Scientist, Viewer
from tinymlaas.pipelines.models import PipelinePlan, PipelineRun, PipelineSource
from tinymlaas.services import pipelines as service

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.post("/validate", responses=problems(422))
def validate_pipeline(body: PipelineSource, store: StoreDep, settings: SettingsDep, user: Scientist
                      ) -> PipelinePlan:
    """Check a pipeline file against the service without running it: 422 lists every problem
    (`details.errors`: line, column, field, message) — an unknown board, a model that does not fit
    or uses an op a target's compiler lacks, a missing dataset, an unknown group, ..."""
    return service.validate(store, settings, body)[1]


@router.post("/runs", status_code=status.HTTP_201_CREATED, responses=problems(422))
async def run_pipeline(body: PipelineSource, request: Request, runner: RunnerDep, engine: RolloutsDep,
                       user: Operator) -> PipelineRun:
    """Validate, then run the stages as jobs (refused as `POST /pipelines/validate` refuses)."""
    return await service.start_run(runner, engine, body, download_base=str(request.base_url).rstrip("/"),
                                   created_by=user.name)


@router.get("/runs")
def list_runs(store: StoreDep, user: Viewer, limit: int = Query(100, ge=1, le=1000)) -> list[PipelineRun]:
    """The newest runs first."""
    return store.pipelines.all(limit)


@router.get("/runs/{run_id}", responses=problems(404))
def read_run(run_id: str, store: StoreDep, user: Viewer) -> PipelineRun:
    """The run and each stage's state, jobs, artifacts and log."""
    return store.pipelines.get(run_id)


@router.post("/runs/{run_id}/rerun", responses=problems(404, 409))
async def rerun(run_id: str, request: Request, runner: RunnerDep, engine: RolloutsDep,
                user: Operator) -> PipelineRun:
    """Run a failed or cancelled run again from the stage that failed; the stages that succeeded are
    not repeated."""
    return await service.rerun(runner, engine, run_id, download_base=str(request.base_url).rstrip("/"))


@router.post("/runs/{run_id}/cancel", responses=problems(404, 409))
async def cancel(run_id: str, runner: RunnerDep, store: StoreDep, user: Operator) -> PipelineRun:
    """Stop a running run in the stage it is in: that stage's training or rollout is cancelled (a
    build finishes on its own), the stages after it do not run; `rerun` goes on from that stage."""
    return await service.cancel(runner, store, run_id, by=user.name)
