"""Records of distributed work: a job's task as it travels to a worker, what a worker claimed,
what the reaper found, and the service instances sharing one database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class TaskCall(BaseModel):
    """A job's work by name and JSON arguments: what a worker process can run (a closure cannot
    travel to another machine)."""

    model_config = ConfigDict(extra="forbid")

    task: str
    args: dict[str, Any] = {}


class Claim(BaseModel):
    """A worker's right to run one attempt of a job."""

    job_id: str
    attempt: int
    call: TaskCall


class Reaped(BaseModel):
    """A job whose runner stopped renewing its lease: sent again, or failed with ``reason``."""

    job_id: str
    attempt: int
    retry: bool
    reason: str
    call: TaskCall | None = None


class Instance(BaseModel):
    """A service instance sharing the database: where its API answers, when it was last alive."""

    name: str
    api_url: str
    started_at: datetime
    seen_at: datetime
