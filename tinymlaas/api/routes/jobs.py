"""Job status: state, current step and progress of long work."""

from __future__ import annotations

from fastapi import APIRouter, Query

from tinymlaas.api.deps import StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Viewer
from tinymlaas.models import Job

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("")
def list_jobs(store: StoreDep, user: Viewer,
              kind: str | None = Query(None, description="only jobs of this kind (build, dry-run, ...)")
              ) -> list[Job]:
    return store.jobs(kind=kind)


@router.get("/{job_id}", responses=problems(404))
def read_job(job_id: str, store: StoreDep, user: Viewer) -> Job:
    return store.job(job_id)
