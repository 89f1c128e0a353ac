"""The operator's control panel: devices (filters, live capabilities, credentials, deploying a
build and watching it), builds and jobs with their steps, models, ML pipelines (:mod:`.pipelines`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from tinymlaas.api.deps import OrchestratorDep, RegistryDep, RunnerDep, SettingsDep, SignerDep, StoreDep
from tinymlaas.api.security import Operator, Scientist, Viewer
from tinymlaas.auth import Role, User
from tinymlaas.errors import NotFound
from tinymlaas.models import Build, Device, Job, JobState
from tinymlaas.models_telemetry import DeviceTelemetry
from tinymlaas.services import devices as device_service
from tinymlaas.services.builds import start_build
from tinymlaas.services.deployments import start_deployment
from tinymlaas.store import Store
from tinymlaas.targets import load_boards
from tinymlaas.web.pages.operator import pipelines
from tinymlaas.web.session import PageError, PageViewer
from tinymlaas.web.site import Link, Section, fragment, page, render
from tinymlaas.web.sse import DONE, event, stream

router = APIRouter(prefix="/ui/operator", include_in_schema=False)
OPERATOR = frozenset({Role.operator})
SCIENTIST = frozenset({Role.data_scientist, Role.operator})
FINISHED = (JobState.succeeded, JobState.failed)


def _may(user: User) -> dict[str, bool]:
    return {"can_operate": user.role.allows(OPERATOR), "can_build": user.role.allows(SCIENTIST)}


# -- devices ----------------------------------------------------------------------------

class DeviceRow:
    """A device as the list shows it: the orchestrator's record and its last telemetry."""

    def __init__(self, device: Device, figures: DeviceTelemetry | None, model: str | None) -> None:
        self.device, self.figures, self.model = device, figures, model
        self.board = figures.board if figures else None
        self.firmware = figures.firmware_version if figures else None

    @property
    def protocol(self) -> str:
        d = self.device
        return f"LwM2M {d.lwm2m}" if d.lwm2m else (d.binding or "")


def _model_names(store: Store) -> dict[str, str]:
    return {m.sha256: f"{m.name}:{m.version}" for m in store.models()}


async def _device_rows(store: Store, devices: list[Device]) -> list[DeviceRow]:
    def join() -> list[DeviceRow]:
        figures = {t.endpoint: t for t in store.telemetry.devices()}
        names = _model_names(store)
        rows = []
        for d in sorted(devices, key=lambda d: d.endpoint):
            f = figures.get(d.endpoint)
            model = None
            if f is not None and f.model_sha256:
                model = names.get(f.model_sha256, f.model_name or f.model_sha256[:12])
            rows.append(DeviceRow(d, f, model))
        return rows

    return await asyncio.to_thread(join)


def _filtered(rows: list[DeviceRow], q: str, status: str, board: str, firmware: str) -> list[DeviceRow]:
    q = q.strip().lower()
    return [r for r in rows
            if (not q or q in r.device.endpoint.lower())
            and (not status or (status == "online") == r.device.online)
            and (not board or r.board == board) and (not firmware or r.firmware == firmware)]


Filter = Annotated[str, Query(max_length=100)]


@router.get("/devices")
async def devices_page(request: Request, user: PageViewer, store: StoreDep, orch: OrchestratorDep,
                       q: Filter = "", status: Filter = "", board: Filter = "", firmware: Filter = ""
                       ) -> HTMLResponse:
    rows = await _device_rows(store, orch.devices())
    return page(request, user, "operator/devices.html", title="Devices", total=len(rows),
                rows=_filtered(rows, q, status, board, firmware),
                boards=sorted({r.board for r in rows if r.board}),
                firmwares=sorted({r.firmware for r in rows if r.firmware}),
                q=q, status=status, board=board, firmware=firmware)


@router.get("/devices/rows")
async def device_rows(user: Viewer, store: StoreDep, orch: OrchestratorDep, q: Filter = "",
                      status: Filter = "", board: Filter = "", firmware: Filter = "") -> HTMLResponse:
    """The list's rows for the filters (htmx swaps them as the operator types)."""
    rows = await _device_rows(store, orch.devices())
    return fragment("operator/_device_rows.html", total=len(rows),
                    rows=_filtered(rows, q, status, board, firmware))


def _finished_builds(store: Store) -> list[tuple[Build, str]]:
    names = {m.id: f"{m.name}:{m.version}" for m in store.models()}
    return [(b, names.get(b.model_id, b.model_id)) for b in store.builds() if b.firmware is not None]


@router.get("/devices/{endpoint}")
async def device_page(request: Request, endpoint: str, user: PageViewer, store: StoreDep,
                      orch: OrchestratorDep) -> HTMLResponse:
    try:
        device = orch.device(endpoint)
    except NotFound as exc:
        raise PageError(exc) from None

    def records() -> dict[str, Any]:
        figures = next((t for t in store.telemetry.devices() if t.endpoint == endpoint), None)
        return {"figures": figures, "deployments": store.deployments(endpoint, limit=20),
                "builds": _finished_builds(store)}

    return page(request, user, "operator/device.html", title=f"Device {endpoint}", device=device,
                **await asyncio.to_thread(records), **_may(user))


@router.get("/devices/{endpoint}/capabilities")
async def capabilities(endpoint: str, user: Viewer, orch: OrchestratorDep) -> HTMLResponse:
    """What the device says about itself, read from it now."""
    return fragment("operator/_capabilities.html", detail=await device_service.device_detail(orch, endpoint))


@router.post("/devices/{endpoint}/credentials")
async def provision(endpoint: str, user: Operator, orch: OrchestratorDep, signer: SignerDep,
                    replace: Annotated[bool, Form()] = False) -> HTMLResponse:
    """New credentials, shown this once (the same call as POST /devices/{endpoint}/credentials)."""
    creds = device_service.provision(orch, signer, endpoint, replace=replace)
    return fragment("operator/_credentials.html", endpoint=endpoint, secret=creds.model_dump())


@router.delete("/devices/{endpoint}/credentials")
async def revoke(endpoint: str, user: Operator, orch: OrchestratorDep) -> HTMLResponse:
    orch.revoke(endpoint)
    return fragment("operator/_credentials.html", endpoint=endpoint, revoked=True)


@router.post("/devices/{endpoint}/deploy")
def deploy(endpoint: str, request: Request, user: Operator, store: StoreDep, orch: OrchestratorDep,
           runner: RunnerDep, signer: SignerDep, registry: RegistryDep,
           build: Annotated[str, Form(min_length=1)],
           kind: Annotated[Literal["model", "firmware"], Form()] = "model") -> HTMLResponse:
    """Start the deployment (refusals come back as the API's problem) and watch it."""
    dep, job = start_deployment(store, orch, runner, signer, kind=kind, endpoint=endpoint, build_id=build,
                                artifact=None, download_base=str(request.base_url).rstrip("/"),
                                registry=registry)
    return fragment("operator/_deployment.html", dep=dep, job=job)


@router.get("/deployments/{deployment_id}/events")
async def deployment_events(request: Request, deployment_id: str, user: Viewer, store: StoreDep
                            ) -> StreamingResponse:
    """The deployment's job step by step, then its outcome."""
    dep = await asyncio.to_thread(store.deployment, deployment_id)
    if dep.job_id is None:
        raise NotFound(f"deployment '{deployment_id}' has no job")
    job_id, last = dep.job_id, ""

    async def poll() -> list[str]:
        nonlocal last
        job = await asyncio.to_thread(store.job, job_id)
        current = await asyncio.to_thread(store.deployment, deployment_id)
        key = f"{job.updated_at}{job.state}"
        if key == last:
            return []
        last = key
        out = [event("progress", render("operator/_deployment_status.html", dep=current, job=job))]
        return [*out, DONE] if job.state in FINISHED else out

    return stream(request, poll, every_s=0.5)


# -- builds, jobs, models -----------------------------------------------------------------

def _build_rows(store: Store) -> list[tuple[Build, str, Job | None]]:
    names = {m.id: f"{m.name}:{m.version}" for m in store.models()}
    jobs = {j.id: j for j in store.jobs(limit=1000, kind="build")}
    return [(b, names.get(b.model_id, b.model_id), jobs.get(b.job_id)) for b in store.builds()]


@router.get("/builds")
async def builds_page(request: Request, user: PageViewer, store: StoreDep, settings: SettingsDep
                      ) -> HTMLResponse:
    def data() -> dict[str, Any]:
        return {"rows": _build_rows(store), "models": store.models(),
                "boards": list(load_boards(settings.targets_dir).values())}

    return page(request, user, "operator/builds.html", title="Builds", **await asyncio.to_thread(data),
                **_may(user))


@router.post("/builds")
def create_build(user: Scientist, store: StoreDep, settings: SettingsDep, runner: RunnerDep,
                 model: Annotated[str, Form(min_length=1)], target: Annotated[str, Form(min_length=1)],
                 version: Annotated[str, Form(pattern=r"^[0-9A-Za-z.+-]{1,40}$")] = "1.0.0"
                 ) -> HTMLResponse:
    """The same checks and job as POST /builds; the page then follows the job."""
    build, job = start_build(store, settings, runner, model=model, target=target, compiler=None,
                             options={}, builder="docker", version=version)
    return fragment("operator/_job_watch.html", job=job, build=build)


@router.get("/builds/{build_id}")
async def build_page(request: Request, build_id: str, user: PageViewer, store: StoreDep) -> HTMLResponse:
    def data() -> dict[str, Any]:
        try:
            build = store.build(build_id)
        except NotFound as exc:
            raise PageError(exc) from None
        return {"build": build, "job": store.job(build.job_id), "model": store.model(build.model_id)}

    return page(request, user, "operator/build.html", title=f"Build {build_id}",
                **await asyncio.to_thread(data))


@router.get("/jobs")
async def jobs_page(request: Request, user: PageViewer, store: StoreDep) -> HTMLResponse:
    jobs = await asyncio.to_thread(store.jobs, 100)
    return page(request, user, "operator/jobs.html", title="Jobs", jobs=jobs, key=_jobs_key(jobs))


def _jobs_key(jobs: list[Job]) -> str:
    return "|".join(f"{j.id}{j.updated_at.timestamp()}" for j in jobs[:100])


@router.get("/jobs/events")
async def jobs_events(request: Request, user: Viewer, store: StoreDep, since: str = "") -> StreamingResponse:
    """The jobs table again whenever a job moved."""
    last = since

    async def poll() -> list[str]:
        nonlocal last
        jobs = await asyncio.to_thread(store.jobs, 100)
        key = _jobs_key(jobs)
        if key == last:
            return []
        last = key
        return [event("jobs", render("operator/_job_rows.html", jobs=jobs))]

    return stream(request, poll, every_s=1.0)


@router.get("/jobs/{job_id}/events")
async def job_events(request: Request, job_id: str, user: Viewer, store: StoreDep) -> StreamingResponse:
    """One job's state, step and progress until it ends."""
    await asyncio.to_thread(store.job, job_id)  # 404 before the stream starts
    last = ""

    async def poll() -> list[str]:
        nonlocal last
        job = await asyncio.to_thread(store.job, job_id)
        key = f"{job.updated_at}{job.state}"
        if key == last:
            return []
        last = key
        out = [event("job", render("operator/_job_status.html", job=job))]
        return [*out, DONE] if job.state in FINISHED else out

    return stream(request, poll, every_s=0.5)


@router.get("/models")
async def models_page(request: Request, user: PageViewer, store: StoreDep) -> HTMLResponse:
    models = await asyncio.to_thread(store.models)
    return page(request, user, "operator/models.html", title="Models", models=models)


router.routes.extend(pipelines.router.routes)  # with their full paths, so they are this section's

section = Section(
    name="operator", title="Operations", router=router, order=20,
    templates=Path(__file__).parent / "templates",
    links=(Link("Devices", "/ui/operator/devices"), Link("Builds", "/ui/operator/builds"),
           Link("Jobs", "/ui/operator/jobs"), Link("Models", "/ui/operator/models"),
           Link("Pipelines", pipelines.HOME)))
