"""The operator's ML pipelines in the browser: a pipeline file checked (every problem with its
line) and run, a run's job graph stage by stage (live while it runs) and re-run from the stage
that failed, the past runs. The same services and checks as ``/pipelines``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from tinymlaas.api.deps import RolloutsDep, RunnerDep, SettingsDep, StoreDep
from tinymlaas.api.security import Operator, Scientist, Viewer
from tinymlaas.auth import Role, User
from tinymlaas.errors import InvalidInput, NotFound
from tinymlaas.models import Job, JobState
from tinymlaas.pipelines.models import PipelinePlan, PipelineProblem, PipelineRun, PipelineSource, Stage
from tinymlaas.pipelines.spec import PipelineInvalid
from tinymlaas.services import pipelines as service
from tinymlaas.store import Store
from tinymlaas.web.forms import record
from tinymlaas.web.session import PageError, PageViewer
from tinymlaas.web.site import fragment, page, render
from tinymlaas.web.sse import DONE, event, stream

HOME = "/ui/operator/pipelines"
router = APIRouter(prefix=HOME, include_in_schema=False)
OPERATOR = frozenset({Role.operator})
SCIENTIST = frozenset({Role.data_scientist, Role.operator})
#: Past runs listed, newest first.
LISTED = 100


def _may(user: User) -> dict[str, bool]:
    """As the API allows: checking a file (data scientist, operator), running one (operator)."""
    return {"can_validate": user.role.allows(SCIENTIST), "can_run": user.role.allows(OPERATOR)}


@router.get("")
async def pipelines_page(request: Request, user: PageViewer, store: StoreDep,
                         from_run: Annotated[str, Query(max_length=40)] = "") -> HTMLResponse:
    """The editor (empty, or holding a past run's file to change and run again) and the past runs."""
    def data() -> dict[str, Any]:
        source = PipelineSource(source="")
        if from_run:
            try:
                run = store.pipelines.get(from_run)
            except NotFound as exc:
                raise PageError(exc) from None
            source = PipelineSource(source=run.source, filename=run.filename)
        return {"runs": store.pipelines.all(LISTED), "source": source}

    return page(request, user, "operator/pipelines.html", title="Pipelines", **await asyncio.to_thread(data),
                **_may(user))


async def _source(request: Request) -> tuple[PipelineSource, bool]:
    """The file as the form sends it: typed into the text area, or uploaded (the upload wins);
    and whether it was uploaded (the page then puts it in the text area to be changed there)."""
    form = await request.form()
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{upload.filename}: a pipeline file is UTF-8 text") from None
        return record(PipelineSource, keep_empty=True, source=text, filename=upload.filename), True
    typed, name = form.get("source", ""), form.get("filename", "")
    return record(PipelineSource, keep_empty=True, source=typed if isinstance(typed, str) else "",
                  filename=name if isinstance(name, str) and name else "pipeline.yaml"), False


def _checked(source: PipelineSource, uploaded: bool, *, plan: PipelinePlan | None = None,
             problems: list[PipelineProblem] | None = None) -> HTMLResponse:
    """What the check found: every problem with its line (and that line's text), or the plan."""
    lines = source.source.splitlines()
    quoted = [lines[p.line - 1] if 0 < p.line <= len(lines) else "" for p in problems or []]
    return fragment("operator/_pipeline_checked.html", source=source, uploaded=uploaded, plan=plan,
                    problems=list(zip(problems or [], quoted, strict=True)))


@router.post("/validate")
async def validate(request: Request, user: Scientist, store: StoreDep, settings: SettingsDep) -> HTMLResponse:
    """The same checks as POST /pipelines/validate; its problems are the page's answer, not an error."""
    source, uploaded = await _source(request)
    try:
        _, plan = await asyncio.to_thread(service.validate, store, settings, source)
    except PipelineInvalid as exc:
        return _checked(source, uploaded, problems=exc.problems)
    return _checked(source, uploaded, plan=plan)


@router.post("/runs")
async def start(request: Request, user: Operator, runner: RunnerDep, engine: RolloutsDep) -> Response:
    """As POST /pipelines/runs: checked, then run; the browser goes to the run's page."""
    source, uploaded = await _source(request)
    try:
        started = await service.start_run(runner, engine, source, created_by=user.name,
                                          download_base=str(request.base_url).rstrip("/"))
    except PipelineInvalid as exc:
        return _checked(source, uploaded, problems=exc.problems)
    return Response(status_code=204, headers={"HX-Redirect": f"{HOME}/runs/{started.id}"})


@dataclass(frozen=True)
class StageView:
    """A stage as the graph draws it: its record, how far it is (None: no bar), whether it is the
    one running now."""

    stage: Stage
    fraction: float | None
    current: bool


def _stages(run: PipelineRun, job: Job) -> list[StageView]:
    """The driver's job reports ``(i + fraction) / stages`` while stage ``i`` runs: that stage's
    own fraction comes back from it."""
    n, out = len(run.stages), []
    for i, s in enumerate(run.stages):
        fraction: float | None = None
        if s.state == "succeeded":
            fraction = 1.0
        elif s.state == "running":
            fraction = min(max(job.progress * n - i, 0.0), 1.0) if job.state == JobState.running else 0.0
        out.append(StageView(s, fraction, s.state == "running" and run.state == "running"))
    return out


def _run_view(store: Store, run_id: str) -> dict[str, Any]:
    run = store.pipelines.get(run_id)
    job = store.job(run.job_id)
    return {"run": run, "job": job, "stages": _stages(run, job), "ended": run.state != "running"}


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str, user: PageViewer, store: StoreDep) -> HTMLResponse:
    try:
        view = await asyncio.to_thread(_run_view, store, run_id)
    except NotFound as exc:
        raise PageError(exc) from None
    return page(request, user, "operator/pipeline_run.html", title=f"Pipeline {view['run'].name}",
                **view, **_may(user))


@router.get("/runs/{run_id}/events")
async def run_events(request: Request, run_id: str, user: Viewer, store: StoreDep) -> StreamingResponse:
    """The job graph again whenever a stage moved, until the run ends."""
    await asyncio.to_thread(store.pipelines.get, run_id)  # 404 before the stream starts
    last = ""
    may = _may(user)

    async def poll() -> list[str]:
        nonlocal last
        view = await asyncio.to_thread(_run_view, store, run_id)
        key = view["run"].model_dump_json() + f"{view['job'].progress}{view['job'].state}"
        if key == last:
            return []
        last = key
        out = [event("run", render("operator/_pipeline_run.html", **view, **may))]
        return [*out, DONE] if view["ended"] else out

    return stream(request, poll, every_s=0.5)


@router.post("/runs/{run_id}/rerun")
async def rerun(request: Request, run_id: str, user: Operator, runner: RunnerDep, engine: RolloutsDep
                ) -> Response:
    """As POST /pipelines/runs/{id}/rerun (refused in its words); the page then follows it again."""
    again = await service.rerun(runner, engine, run_id, download_base=str(request.base_url).rstrip("/"))
    return Response(status_code=204, headers={"HX-Redirect": f"{HOME}/runs/{again.id}"})


@router.post("/runs/{run_id}/cancel")
async def cancel(run_id: str, user: Operator, runner: RunnerDep, store: StoreDep) -> Response:
    """As POST /pipelines/runs/{id}/cancel (refused in its words); the live page shows it stop."""
    await service.cancel(runner, store, run_id, by=user.name)
    return Response(status_code=204)
