"""Job status: state, current step and progress of long work."""

from __future__ import annotations

from fastapi import APIRouter

from tinymlaas.api.deps import StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Viewer
from tinymlaas.models import Job

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("")
def list_jobs(store: StoreDep, user: Viewer) -> list[Job]:
    return store.jobs()


@router.get("/{job_id}", responses=problems(404))
def read_job(job_id: str, store: StoreDep, user: Viewer) -> Job:
    return store.job(job_id)
