"""The CTO's dry-run as a job of the service: the lifecycle (:mod:`.lifecycle`) on chosen boards,
its steps recorded as they happen, past runs kept with their reports (the job's result)."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from tinymlaas.config import Settings
from tinymlaas.errors import DeviceError, InvalidInput, NotFound
from tinymlaas.jobs import JobRunner
from tinymlaas.models import Job
from tinymlaas.models_dryrun import DryRun, DryRunRequest
from tinymlaas.plugins.base import Progress
from tinymlaas.plugins.registry import orchestrator_plugin
from tinymlaas.store import Store
from tinymlaas.targets import get_board

if TYPE_CHECKING:  # the lifecycle starts a service of its own: imported when a run starts
    from tinymlaas.services.lifecycle import BoardRun

KIND = "dry-run"


def _record(job: Job) -> DryRun:
    result = job.result or {}
    return DryRun(id=job.id, state=job.state, step=job.step, progress=job.progress, error=job.error,
                  boards=result.get("boards", []), orchestrator=result.get("orchestrator", "lwm2m"),
                  runs=result.get("runs", []), created_at=job.created_at, updated_at=job.updated_at)


def start_dry_run(store: Store, settings: Settings, runner: JobRunner, request: DryRunRequest) -> DryRun:
    """Refuse unknown or repeated boards now; run the lifecycle as a job."""
    if len(set(request.boards)) != len(request.boards):
        raise InvalidInput(f"boards {request.boards} name a board twice")
    for name in request.boards:
        get_board(settings.targets_dir, name)
    orchestrator_plugin(request.orchestrator)
    job = store.new_job(KIND)
    plan: dict[str, Any] = {"boards": request.boards, "orchestrator": request.orchestrator, "runs": []}
    store.update_job(job.id, result=plan)
    runner.submit(job, lambda p: _run(store, settings, job.id, plan, p))
    return dry_run_record(store, job.id)


def _run(store: Store, settings: Settings, job_id: str, plan: dict[str, Any],
         progress: Progress) -> dict[str, Any]:
    """The job's body (a thread): images, then the lifecycle; each step lands in the job's result."""
    from tinymlaas.images import ensure_all
    from tinymlaas.services.lifecycle import dry_run

    def report(runs: list[BoardRun]) -> None:
        store.update_job(job_id, result={**plan, "runs": [{**asdict(r), "ok": r.ok} for r in runs]})

    work = settings.data_dir / "dryruns" / job_id
    try:
        ensure_all(settings, progress=lambda step, f: progress(f"images: {step}", 0.02 * f))
        runs = dry_run(settings, work, plan["boards"], progress, orchestrator=plan["orchestrator"],
                       on_check=report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(runs)
    failed = [r.board for r in runs if not r.ok]
    if failed:
        raise DeviceError(f"the lifecycle dry-run failed on: {', '.join(failed)}")
    return {**plan, "runs": [{**asdict(r), "ok": r.ok} for r in runs]}


def dry_run_record(store: Store, run_id: str) -> DryRun:
    try:
        job = store.job(run_id)
    except NotFound:
        job = None
    if job is None or job.kind != KIND:
        raise NotFound(f"no dry-run '{run_id}'")
    return _record(job)


def dry_runs(store: Store, limit: int = 50) -> list[DryRun]:
    """Past and running dry-runs, newest first."""
    return [_record(j) for j in store.jobs(limit=limit, kind=KIND)]
