"""The CTO's page: start the lifecycle dry-run on chosen boards, watch its steps, past runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from tinymlaas.api.deps import RunnerDep, SettingsDep, StoreDep
from tinymlaas.api.security import Operator, Viewer
from tinymlaas.auth import Role
from tinymlaas.errors import NotFound
from tinymlaas.models import JobState
from tinymlaas.models_dryrun import DryRunRequest
from tinymlaas.services import dryrun as service
from tinymlaas.targets import load_boards
from tinymlaas.web.session import PageError, PageViewer
from tinymlaas.web.site import Link, Section, fragment, page, render
from tinymlaas.web.sse import DONE, event, stream

router = APIRouter(prefix="/ui/cto", include_in_schema=False)


@router.get("/dryruns")
async def dry_runs_page(request: Request, user: PageViewer, store: StoreDep, settings: SettingsDep
                        ) -> HTMLResponse:
    def data() -> dict[str, Any]:
        return {"runs": service.dry_runs(store), "boards": list(load_boards(settings.targets_dir).values())}

    return page(request, user, "cto/dryruns.html", title="Lifecycle dry-runs",
                can_run=user.role.allows(frozenset({Role.operator})), **await asyncio.to_thread(data))


@router.post("/dryruns")
def start(user: Operator, store: StoreDep, settings: SettingsDep, runner: RunnerDep,
          boards: Annotated[list[str], Form()],
          orchestrator: Annotated[Literal["lwm2m", "http-pull"], Form()] = "lwm2m") -> HTMLResponse:
    """The same checks and job as POST /dryruns; the page then follows its steps."""
    run = service.start_dry_run(store, settings, runner,
                                DryRunRequest(boards=boards, orchestrator=orchestrator))
    return fragment("cto/_watch.html", run=run)


@router.get("/dryruns/{run_id}")
async def dry_run_page(request: Request, run_id: str, user: PageViewer, store: StoreDep) -> HTMLResponse:
    try:
        run = await asyncio.to_thread(service.dry_run_record, store, run_id)
    except NotFound as exc:
        raise PageError(exc) from None
    return page(request, user, "cto/dryrun.html", title=f"Dry-run {run_id}", run=run)


@router.get("/dryruns/{run_id}/events")
async def dry_run_events(request: Request, run_id: str, user: Viewer, store: StoreDep) -> StreamingResponse:
    """Each step as it lands, until the run ends."""
    await asyncio.to_thread(service.dry_run_record, store, run_id)  # 404 before the stream starts
    last = ""

    async def poll() -> list[str]:
        nonlocal last
        run = await asyncio.to_thread(service.dry_run_record, store, run_id)
        key = run.model_dump_json(include={"state", "step", "runs", "updated_at"})
        if key == last:
            return []
        last = key
        out = [event("run", render("cto/_run.html", run=run))]
        return [*out, DONE] if run.state in (JobState.succeeded, JobState.failed) else out

    return stream(request, poll, every_s=1.0)


section = Section(name="cto", title="Lifecycle", router=router, order=30,
                  templates=Path(__file__).parent / "templates",
                  links=(Link("Dry-runs", "/ui/cto/dryruns"),))
