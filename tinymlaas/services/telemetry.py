"""The fleet's telemetry: a sampler that reads every online device's figures on a timer, and
the dashboard's overview built from what it recorded plus the service's jobs and deployments.

Devices report cumulative figures (inference counter, last latency and instruction count,
firmware and model); the sampler turns them into history the devices do not keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

from tinymlaas.errors import TinyMLaaSError
from tinymlaas.models import Device, DeviceCapabilities, JobState
from tinymlaas.models_telemetry import (
    BoardFigures,
    DeviceSample,
    DeviceTelemetry,
    Failure,
    FleetOverview,
    Quantiles,
    VersionCount,
)
from tinymlaas.plugins.base import Orchestrator
from tinymlaas.store import Store

log = logging.getLogger(__name__)


def _sample(device: Device, caps: DeviceCapabilities | None, last_tick: float | None) -> DeviceSample:
    fresh = last_tick is None or (device.registered_at or 0) > last_tick
    if caps is None:
        return DeviceSample(endpoint=device.endpoint, online=device.online, fresh=fresh)
    return DeviceSample(endpoint=device.endpoint, online=device.online, fresh=fresh, board=caps.board,
                        firmware_version=caps.firmware_version, model_sha256=caps.model_sha256,
                        model_name=caps.model_name, runtime=caps.runtime,
                        inference_count=caps.inference_count, latency_us=caps.latency_us,
                        instructions=caps.instructions)


async def sample(store: Store, orch: Orchestrator, *, concurrency: int = 16,
                 timeout_s: float = 10.0) -> int:
    """One tick: read every online device (``concurrency`` at a time; a device that does not
    answer keeps its last figures) and record it. Returns the inferences counted."""
    last = await asyncio.to_thread(store.telemetry.last_tick)
    sem = asyncio.Semaphore(concurrency)

    async def read(device: Device) -> DeviceSample:
        caps = None
        if device.online:
            async with sem:
                with contextlib.suppress(TinyMLaaSError, TimeoutError):
                    caps = await asyncio.wait_for(orch.capabilities(device.endpoint), timeout_s)
        return _sample(device, caps, last.timestamp() if last else None)

    samples = await asyncio.gather(*(read(d) for d in orch.devices()))
    return await asyncio.to_thread(store.telemetry.record, datetime.now(UTC), list(samples))


class Sampler:
    """Samples the fleet every ``interval_s`` on the API's loop (the first tick comes early,
    so a new service has figures within seconds)."""

    def __init__(self, store: Store, orch: Orchestrator, interval_s: float) -> None:
        self.store, self.orch, self.interval_s = store, orch, interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="telemetry")

    async def _loop(self) -> None:
        await asyncio.sleep(min(self.interval_s, 5.0))
        while True:
            try:
                await sample(self.store, self.orch)
            except Exception:  # the dashboard misses a tick; the service goes on
                log.exception("telemetry tick failed")
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _quantiles(values: list[float]) -> Quantiles | None:
    if not values:
        return None
    values = sorted(values)
    cuts = [values[0]] * 9 if len(values) == 1 else statistics.quantiles(values, n=10, method="inclusive")
    return Quantiles(n=len(values), min=values[0], p10=cuts[0], p50=cuts[4], p90=cuts[8], max=values[-1])


def _boards(devices: list[DeviceTelemetry]) -> list[BoardFigures]:
    by_board: dict[str, list[DeviceTelemetry]] = {}
    for d in devices:
        by_board.setdefault(d.board or "unknown", []).append(d)
    return [BoardFigures(board=b, devices=len(ds),
                         latency_us=_quantiles([d.latency_us for d in ds if d.latency_us is not None]),
                         instructions=_quantiles([d.instructions for d in ds if d.instructions is not None]))
            for b, ds in sorted(by_board.items())]


def _counts(values: list[str]) -> list[VersionCount]:
    return [VersionCount(version=v, devices=n) for v, n in Counter(values).most_common()]


def _failures(store: Store, devices: list[Device], since: datetime, limit: int = 10) -> list[Failure]:
    out = [Failure(at=j.updated_at, kind="job", what=f"{j.kind} {j.id}", detail=j.error or "")
           for j in store.jobs(limit=200) if j.state is JobState.failed and j.updated_at >= since]
    out += [Failure(at=d.created_at, kind="deployment", what=f"{d.kind} update of {d.endpoint}",
                    detail=d.detail or d.result)
            for d in store.deployments(limit=200) if d.succeeded is False and d.created_at >= since]
    out += [Failure(at=datetime.fromtimestamp(d.offline_since, UTC), kind="device",
                    what=f"{d.endpoint} offline", detail=d.offline_reason)
            for d in devices if not d.online and d.offline_since
            and datetime.fromtimestamp(d.offline_since, UTC) >= since]
    return sorted(out, key=lambda f: f.at, reverse=True)[:limit]


async def overview(store: Store, orch: Orchestrator, *, hours: int = 24) -> FleetOverview:
    """The dashboard: devices now (from the orchestrator, on its loop), the last ``hours`` of
    telemetry and the recent failures (from the database, in a thread)."""
    return await asyncio.to_thread(_overview, store, orch.devices(), hours)


def _overview(store: Store, devices: list[Device], hours: int) -> FleetOverview:
    """Model hashes are named by the registry where it knows them."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=hours)
    online = {d.endpoint for d in devices if d.online}
    # Figures of devices the orchestrator still knows, online now.
    field = [t for t in store.telemetry.devices() if t.endpoint in online]
    names = {m.sha256: f"{m.name}:{m.version}" for m in store.models()}
    inferences = store.telemetry.inferences(since)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    return FleetOverview(
        at=now, devices=len(devices), online=len(online), offline=len(devices) - len(online),
        sampled_at=store.telemetry.last_tick(), history=store.telemetry.history(since),
        firmware=_counts([t.firmware_version for t in field if t.firmware_version]),
        models=_counts([names.get(t.model_sha256, t.model_name or t.model_sha256[:12])
                        for t in field if t.model_sha256]),
        inferences=inferences,
        inferences_last_hour=sum(i.count for i in inferences if i.hour >= this_hour),
        boards=_boards(field), failures=_failures(store, devices, since))
