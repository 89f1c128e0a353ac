"""Profiles of a model across boards: fit, instructions per inference, latency at the clock."""

from __future__ import annotations

from fastapi import APIRouter, status

from tinymlaas.api.deps import RunnerDep, SettingsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Scientist
from tinymlaas.datasets.models import ProfileRequest
from tinymlaas.models import Job
from tinymlaas.services import profile as service

router = APIRouter(prefix="/profiles", tags=["profiles"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 422))
def start_profile(
    body: ProfileRequest, store: StoreDep, settings: SettingsDep, runner: RunnerDep, user: Scientist
) -> Job:
    """A job; its result is the profile (a row per board) and its plot (an artifact)."""
    return service.start_profile(store, settings, runner, body)
