"""Typed records of the fleet's telemetry: what the sampler sees and what the dashboard shows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class DeviceSample(BaseModel):
    """One device as one sampling tick saw it (capability fields only when it could be read)."""

    endpoint: str
    online: bool
    #: The device registered (or rebooted) since the previous tick: every inference its counter
    #: shows happened since then.
    fresh: bool = False
    board: str | None = None
    firmware_version: str | None = None
    model_sha256: str | None = None
    model_name: str | None = None
    runtime: str | None = None
    inference_count: int | None = None
    latency_us: int | None = None
    instructions: int | None = None


class DeviceTelemetry(DeviceSample):
    """A device's last known figures, and when they were read."""

    seen_at: datetime | None = Field(None, description="the last tick that read its capabilities")


class FleetPoint(BaseModel):
    at: datetime
    online: int
    offline: int


class InferenceHour(BaseModel):
    hour: datetime
    board: str
    count: int


class Quantiles(BaseModel):
    """A distribution over devices: each device's last reported figure."""

    n: int
    min: float
    p10: float
    p50: float
    p90: float
    max: float


class BoardFigures(BaseModel):
    board: str
    devices: int
    latency_us: Quantiles | None = None
    instructions: Quantiles | None = None


class VersionCount(BaseModel):
    version: str
    devices: int


class Failure(BaseModel):
    at: datetime
    kind: Literal["job", "deployment", "device"]
    what: str
    detail: str


class FleetOverview(BaseModel):
    """The CEO's dashboard: the fleet now, over time, and what went wrong lately."""

    at: datetime
    devices: int
    online: int
    offline: int
    sampled_at: datetime | None = Field(None, description="the last telemetry tick")
    history: list[FleetPoint] = Field(description="devices online/offline at each tick")
    firmware: list[VersionCount] = Field(description="firmware versions in the field")
    models: list[VersionCount] = Field(description="models in the field (registry name:version "
                                                   "where the hash is registered)")
    inferences: list[InferenceHour] = Field(description="inferences per hour and board")
    inferences_last_hour: int
    boards: list[BoardFigures] = Field(description="latency and instruction counts per board")
    failures: list[Failure] = Field(description="recent failed jobs, deployments and devices gone")
