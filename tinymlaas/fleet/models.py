"""Typed records of the operator's fleet: the device registry, bridges, groups, rollouts and
run-time toolchains (what crosses the store, the services, the API and the CLI)."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tinymlaas.models import Device, DeviceCapabilities, DeviceCredentials

#: Endpoint names the registry accepts: what an LwM2M server takes (up to 128 characters, URNs
#: such as ``urn:dev:ops:…`` included), safe in URL paths.
ENDPOINT = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
TAG = r"^[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}$"

DeviceState = Literal["expected", "active", "pending", "decommissioned"]
DeviceKind = Literal["device", "bridge"]


class DeviceFacts(BaseModel):
    """What a device last reported about itself: the registry keeps it between connections."""

    board: str | None = None
    cpu: str | None = None
    runtime: str | None = None
    firmware_version: str | None = None
    model_sha256: str | None = None
    model_name: str | None = None

    @classmethod
    def from_capabilities(cls, caps: DeviceCapabilities) -> DeviceFacts:
        return cls(board=caps.board, cpu=caps.cpu, runtime=caps.runtime,
                   firmware_version=caps.firmware_version, model_sha256=caps.model_sha256 or None,
                   model_name=caps.model_name or None)


class BridgeMcu(BaseModel):
    """One board behind a bridge, as the bridge reports it."""

    endpoint: str
    board: str = ""
    health: str = Field("", description="running, booting or down (with why)")
    firmware_version: str = ""
    restarts: int = 0


class DeviceSpec(BaseModel):
    """A device pre-registered by the operator before it first connects."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(pattern=ENDPOINT, description="the name it joins with (LwM2M endpoint)")
    name: str = Field("", max_length=200, description="what people call it")
    board: str | None = Field(None, description="the board it is (GET /targets)")
    tags: list[str] = Field([], description="labels for groups and filters")
    location: str = Field("", max_length=200)
    notes: str = Field("", max_length=2000)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not re.match(TAG, tag):
                raise ValueError(f"tag '{tag}' must be 1-64 letters, digits or ._:=-")
        return sorted(set(tags))


class DevicePatch(BaseModel):
    """What the operator may change on a registered device (absent fields stay)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    board: str | None = None
    tags: list[str] | None = None
    location: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=2000)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        return None if tags is None else DeviceSpec._tags(tags)


class RegisteredDevice(Device):
    """A device as the registry records it, with the orchestrator's live fields when it is
    connected (``online``, ``lifetime``, ``objects`` ... are the orchestrator's)."""

    kind: DeviceKind = "device"
    name: str = ""
    board: str | None = None
    tags: list[str] = []
    location: str = ""
    notes: str = ""
    state: DeviceState = "active"
    bridge: str | None = Field(None, description="the bridge this board is behind")
    health: str | None = Field(None, description="as its bridge reports it")
    last_seen: datetime | None = None
    firmware_version: str | None = None
    model_sha256: str | None = None
    model_name: str | None = None
    reported: DeviceFacts | None = Field(None, description="what it last reported about itself")
    build_id: str | None = Field(None, description="the build it was last updated to by this service")
    created_at: datetime | None = None
    decommissioned_at: datetime | None = None


class RegisteredDeviceDetail(BaseModel):
    """A device's record and, when it is online, what it reports about itself now."""

    device: RegisteredDevice
    capabilities: DeviceCapabilities | None = None
    capabilities_error: str | None = None


class PreRegistered(BaseModel):
    """A pre-registered device, with its credentials (shown once) when devices need them."""

    device: RegisteredDevice
    credentials: DeviceCredentials | None = None


class DeviceEvent(BaseModel):
    at: datetime
    endpoint: str
    kind: str = Field(description="registered, joined, offline, deployed, decommissioned, ...")
    detail: str = ""


class DeviceQuery(BaseModel):
    """Filters of the device list; all given filters must hold."""

    model_config = ConfigDict(extra="forbid")

    kind: DeviceKind | None = "device"
    board: str | None = None
    tags: list[str] = []
    online: bool | None = None
    firmware: str | None = Field(None, description="the firmware version it runs")
    model: str | None = Field(None, description="the model it runs: SHA-256 (or a prefix) or name")
    state: DeviceState | None = None
    bridge: str | None = None
    include_decommissioned: bool = False
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=2**31 - 1)  # a database integer


class Bridge(BaseModel):
    """A bridge process fronting boards, and the boards behind it with their health."""

    endpoint: str
    name: str = ""
    online: bool = False
    state: DeviceState = "active"
    last_seen: datetime | None = None
    location: str = ""
    notes: str = ""
    devices: list[RegisteredDevice] = []


class BridgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(pattern=ENDPOINT, description="the name the bridge itself joins with")
    name: str = Field("", max_length=200)
    location: str = Field("", max_length=200)
    notes: str = Field("", max_length=2000)


# -- groups and rollouts ---------------------------------------------------------------------


class GroupSpec(BaseModel):
    """A group: devices matching a tag query (every tag, and the board if given), or a list."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    description: str = Field("", max_length=500)
    tags: list[str] = Field([], description="query: devices carrying every one of these tags")
    board: str | None = Field(None, description="query: and of this board")
    devices: list[str] = Field([], description="or an explicit list of endpoints")

    @model_validator(mode="after")
    def _one_kind(self) -> GroupSpec:
        query = bool(self.tags or self.board)
        if query == bool(self.devices):
            raise ValueError("give a query ('tags' and/or 'board') or an explicit 'devices' list")
        for ep in self.devices:
            if not re.match(ENDPOINT, ep):
                raise ValueError(f"'{ep}' is not an endpoint name")
        if len(set(self.devices)) != len(self.devices):
            raise ValueError("'devices' names an endpoint twice")
        self.tags = DeviceSpec._tags(self.tags)
        return self


class Group(GroupSpec):
    created_at: datetime


RolloutState = Literal["running", "paused", "waiting_approval", "succeeded", "failed", "cancelled",
                       "stopped"]
#: States a rollout does not leave.
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "stopped"})
TargetState = Literal["pending", "running", "succeeded", "failed", "rolled_back", "rollback_failed",
                      "cancelled", "stopped"]
#: A device whose update ended badly, whatever happened after.
FAILED = frozenset({"failed", "rolled_back", "rollback_failed"})
DONE = frozenset({"succeeded"}) | FAILED


def wave_sizes(waves: list[str], total: int) -> list[int]:
    """Devices per wave: ``"1"`` a count, ``"10%"`` a share of the group (at least one); the last
    wave (``"rest"``, or any size) takes every device left. Waves left empty are dropped."""
    sizes, left = [], total
    for i, wave in enumerate(waves):
        if i == len(waves) - 1:
            n = left
        elif wave.endswith("%"):
            n = min(left, max(1, math.ceil(total * float(wave[:-1]) / 100)))
        else:
            n = min(left, int(wave))
        if n:
            sizes.append(n)
        left -= n
    return sizes


class RolloutSpec(BaseModel):
    """One release (a build per board; firmware or only the model) to a group, in waves."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    group: str = Field(description="the group (GET /groups)")
    builds: list[str] = Field(min_length=1, description="finished builds, at most one per board: "
                                                        "each device gets the build for its board")
    kind: Literal["firmware", "model"] = Field("firmware", description="FOTA, or SOTA (the model only)")
    waves: list[str] = Field(["1", "10%", "rest"], min_length=1, max_length=20,
                             description='wave sizes: "1" (devices), "10%" (of the group), "rest"')
    success_threshold: float = Field(0.95, ge=0, le=1,
                                     description="share of a wave that must succeed before the next")
    error_threshold: float = Field(0.05, ge=0, le=1,
                                   description="share of a wave failing that pauses the rollout")
    manual_approval: bool = Field(False, description="wait for an approval before every next wave")
    rollback: bool = Field(True, description="put failed devices back on their previous build")

    @field_validator("waves")
    @classmethod
    def _waves(cls, waves: list[str]) -> list[str]:
        for i, w in enumerate(waves):
            ok = (w == "rest" and i == len(waves) - 1) or bool(re.fullmatch(r"[1-9][0-9]{0,6}", w)) \
                or bool(re.fullmatch(r"(100|[1-9][0-9]?)(\.[0-9]+)?%", w))
            if not ok:
                raise ValueError(f"wave '{w}' is none of: a count (\"1\"), a share (\"10%\"), "
                                 "\"rest\" (last only)")
        return waves


class WaveStatus(BaseModel):
    index: int
    size: int
    state: Literal["pending", "running", "done"] = "pending"
    counts: dict[str, int] = Field({}, description="devices per state")
    waived: bool = Field(False, description="an operator resumed it: its thresholds no longer pause")


class Rollout(BaseModel):
    id: str
    name: str
    group: str
    kind: Literal["firmware", "model"]
    builds: dict[str, str] = Field(description="board -> build id")
    state: RolloutState
    reason: str = ""
    current_wave: int
    waves: list[WaveStatus]
    success_threshold: float
    error_threshold: float
    manual_approval: bool
    rollback: bool
    devices: int
    job_id: str
    created_by: str = ""
    created_at: datetime
    updated_at: datetime


class RolloutTarget(BaseModel):
    """One device of a rollout: its wave, how its update went, what it had before."""

    endpoint: str
    wave: int
    board: str
    state: TargetState
    build_id: str
    deployment_id: str | None = None
    previous_build_id: str | None = None
    rollback_deployment_id: str | None = None
    detail: str = ""
    updated_at: datetime


class Reason(BaseModel):
    """Why an operator did something (kept in the history)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


# -- toolchains --------------------------------------------------------------------------------


class ToolchainSpec(BaseModel):
    """A partner's builder image already in the local engine, and the boards it serves."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    image: str = Field(min_length=1, max_length=300, description="a local image: name:tag or id")
    boards: list[str] = Field(min_length=1)
    description: str = Field("", max_length=500)


class Toolchain(BaseModel):
    name: str
    image_id: str = Field(description="the image accepted (builds run exactly this one)")
    reference: str = Field(description="what it was registered from")
    source: Literal["local", "archive"]
    boards: list[str]
    description: str = ""
    self_test: list[str] = Field([], description="what its self-test printed")
    created_at: datetime


class Sighting(BaseModel):
    """What the registry learnt about one device from its orchestrator since the last write."""

    endpoint: str
    #: Create the record in this state when there is none (a device nobody pre-registered).
    create_as: DeviceState | None = None
    kind: DeviceKind | None = None
    online: bool | None = None
    seen_at: datetime | None = None
    facts: DeviceFacts | None = None
    bridge: str | None = None
    health: str | None = None
    build_id: str | None = Field(None, description="the build a deployment just put on it")
    events: list[tuple[str, str]] = Field([], description="(kind, detail) to add to its history")
