"""Typed records of the CTO's dry-runs run by the service (each is a job of kind ``dry-run``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tinymlaas.models import JobState


class DryRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    boards: list[str] = Field(min_length=1, max_length=16, description="boards to run on (GET /targets)")
    orchestrator: Literal["lwm2m", "http-pull"] = Field("lwm2m", description="how the devices join")


class DryRunCheck(BaseModel):
    step: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


class DryRunBoard(BaseModel):
    board: str
    endpoint: str
    ok: bool
    checks: list[DryRunCheck] = []


class DryRun(BaseModel):
    """A dry-run: its job's state and step, and each board's steps so far."""

    id: str = Field(description="the job's id")
    state: JobState
    step: str = ""
    progress: float = 0.0
    error: str | None = None
    boards: list[str] = []
    orchestrator: str = "lwm2m"
    runs: list[DryRunBoard] = []
    created_at: datetime
    updated_at: datetime

    @property
    def ok(self) -> bool:
        return self.state is JobState.succeeded and all(r.ok for r in self.runs)
