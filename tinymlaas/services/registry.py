"""The device registry's use cases: pre-register, edit, approve, decommission, delete, list; and
the listener the orchestrator tells about devices joining, staying and leaving.

The orchestrator keeps the live registration state; the registry keeps the durable
record in the store. What the orchestrator says arrives on the event loop, many
times a second with a large fleet, so it is merged in memory and written in one
batch every ``devices.flush_s`` seconds, in a thread. Whether an endpoint may join
is decided from an in-memory copy of every device's state (no database read on
the way in). When a device joins, or reports another firmware or model than it
did, its latest deployment is reconciled with what it runs (in a thread, one at a
time, in the order the reports came). No FastAPI here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinymlaas.config import DeviceSettings
from tinymlaas.errors import Conflict, DeviceUnreachable, InvalidInput, NotFound, TinyMLaaSError
from tinymlaas.fleet.models import (
    Bridge,
    BridgeMcu,
    BridgeSpec,
    DeviceEvent,
    DeviceFacts,
    DeviceKind,
    DevicePatch,
    DeviceQuery,
    DeviceSpec,
    DeviceState,
    PreRegistered,
    RegisteredDevice,
    RegisteredDeviceDetail,
    Sighting,
)
from tinymlaas.models import Board, DeviceCredentials
from tinymlaas.plugins.base import DeviceEvents, Orchestrator
from tinymlaas.services.deployments import reconcile
from tinymlaas.services.devices import capabilities_now, provision
from tinymlaas.signing import Signer
from tinymlaas.store import Store
from tinymlaas.targets import get_board, load_boards

log = logging.getLogger(__name__)
#: Capability reads after registrations, at once (a fleet rebooting together must not flood).
READS_AT_ONCE = 16


def _now() -> datetime:
    return datetime.now(UTC)


def _merge(old: Sighting, new: Sighting) -> Sighting:
    """Two sightings of one device before a write: the newer fields win, events add up."""
    fields = {k: v for k, v in new.model_dump(exclude={"events", "facts"}).items() if v is not None}
    facts = old.facts
    if new.facts is not None:
        facts = DeviceFacts.model_validate({**(old.facts.model_dump(exclude_none=True) if old.facts else {}),
                                            **new.facts.model_dump(exclude_none=True)})
    return old.model_copy(update={**fields, "create_as": old.create_as or new.create_as, "facts": facts,
                                  "events": old.events + new.events})


class DeviceRegistry(DeviceEvents):
    """The durable record of the fleet, kept up to date from the orchestrator's events."""

    def __init__(self, store: Store, orchestrator: Orchestrator, settings: DeviceSettings,
                 targets_dir: Path, signer: Signer | None = None, instance: str | None = None) -> None:
        """``instance``: this one's name among several on the database (devices that join here are
        recorded as registered with it); None: the only instance."""
        self.store = store
        self.instance = instance
        self._homes: set[str] = set()  # joined here since the last write
        self.signer = signer  # its public key goes with the credentials it issues
        self.orchestrator = orchestrator
        self.settings = settings
        self.targets_dir = targets_dir
        self._known: dict[str, tuple[DeviceKind, DeviceState]] = {}
        self._pending: dict[str, Sighting] = {}
        self._reads = asyncio.Semaphore(READS_AT_ONCE)
        self._tasks: set[asyncio.Task[None]] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: What each device last said it runs (firmware version, model SHA-256), and the lock
        #: that keeps reconciling its deployments in the order of the reports.
        self._runs: dict[str, tuple[str | None, str | None]] = {}
        self._reconciling = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load who is known and listen to the orchestrator (before it starts)."""
        self._loop = asyncio.get_running_loop()
        if self.instance is None:
            await asyncio.to_thread(self.store.devices.mark_all_offline)
        else:  # the other instances' devices are still connected to them
            await asyncio.to_thread(self.store.instances.mark_offline, self.instance)
        self._known = await asyncio.to_thread(self.store.devices.states)
        self.orchestrator.events = self
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="registry-flush")

    async def stop(self) -> None:
        for task in [*self._tasks, *([self._flusher] if self._flusher else [])]:
            task.cancel()
        await self.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_s)
            try:
                await self.flush()
            except Exception:  # the next batch may go through: say so, keep listening
                log.exception("writing the device registry failed")

    async def flush(self) -> None:
        """Write what was seen since the last write (one transaction; writes keep their order)."""
        async with self._flush_lock:
            if self._pending:
                batch, self._pending = self._pending, {}
                await asyncio.to_thread(self.store.devices.apply, list(batch.values()))
            if self._homes and self.instance is not None:
                homes, self._homes = self._homes, set()
                await asyncio.to_thread(self.store.instances.set_homes, sorted(homes), self.instance)

    def _queue(self, sighting: Sighting) -> None:
        old = self._pending.get(sighting.endpoint)
        self._pending[sighting.endpoint] = sighting if old is None else _merge(old, sighting)

    # -- what the orchestrator says (on the event loop) ---------------------------------------------
    def admit(self, endpoint: str) -> str | None:
        if endpoint not in self._known and self.instance is not None:
            self._known.update(self.store.devices.states())  # registered through another instance
        known = self._known.get(endpoint)
        if known is None:
            if self.settings.unknown == "accept":
                self._known[endpoint] = ("device", "active")
                return None
            self._known[endpoint] = ("device", "pending")
            self._queue(Sighting(endpoint=endpoint, create_as="pending", seen_at=_now(),
                                 events=[("held", "joined unannounced: held for approval")]))
            return f"endpoint '{endpoint}' is not registered here: it waits for an operator's approval"
        if known[1] == "pending":
            return f"endpoint '{endpoint}' waits for an operator's approval"
        if known[1] == "decommissioned":
            return f"device '{endpoint}' is decommissioned"
        return None

    def joined(self, endpoint: str, facts: DeviceFacts | None = None) -> None:
        self._queue(Sighting(endpoint=endpoint, create_as="active", online=True, seen_at=_now(), facts=facts,
                             events=[("online", "joined" if self.instance is None
                                      else f"joined instance {self.instance}")]))
        self._homes.add(endpoint)
        if facts is None:  # the protocol carried none: read what it is now
            self._spawn(self._read_facts(endpoint))
        else:
            self._check_records(endpoint, facts, joined=True)

    def seen(self, endpoint: str, facts: DeviceFacts | None = None) -> None:
        self._queue(Sighting(endpoint=endpoint, online=True, seen_at=_now(), facts=facts))
        if facts is not None:
            self._check_records(endpoint, facts, joined=False)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check_records(self, endpoint: str, facts: DeviceFacts, *, joined: bool) -> None:
        """Reconcile the device's latest deployment with what it runs: when it (re-)joins, and
        when a report says it runs something else than the last one did."""
        runs = (facts.firmware_version, facts.model_sha256)
        if runs == (None, None) or (not joined and self._runs.get(endpoint) == runs):
            return
        self._runs[endpoint] = runs
        self._spawn(self._reconcile(endpoint, *runs))

    async def _reconcile(self, endpoint: str, firmware_version: str | None, model_sha256: str | None) -> None:
        async with self._reconciling:
            try:
                await asyncio.to_thread(reconcile, self.store, endpoint, firmware_version, model_sha256)
            except Exception:  # the next report tries again: say so, keep listening
                log.exception("reconciling the deployments of %s failed", endpoint)

    def left(self, endpoint: str, reason: str) -> None:
        self._queue(Sighting(endpoint=endpoint, online=False, events=[("offline", reason)]))

    def bridge(self, endpoint: str, mcus: list[BridgeMcu]) -> None:
        state = self._known.get(endpoint, ("device", "active"))[1]
        self._known[endpoint] = ("bridge", state)
        self._queue(Sighting(endpoint=endpoint, kind="bridge"))
        for mcu in mcus:
            self._queue(Sighting(endpoint=mcu.endpoint, bridge=endpoint, health=mcu.health))

    async def _read_facts(self, endpoint: str) -> None:
        async with self._reads:
            try:
                caps = await self.orchestrator.capabilities(endpoint)
            except TinyMLaaSError as exc:
                log.info("cannot read what %s is: %s", endpoint, exc.message)
                return
        facts = DeviceFacts.from_capabilities(caps)
        self._queue(Sighting(endpoint=endpoint, facts=facts))
        self._check_records(endpoint, facts, joined=True)

    async def recheck(self, endpoint: str) -> None:
        """Reconcile the device's latest deployment with what it says it runs now, if it is
        online (an update's job that failed asks: the device may have taken it all the same)."""
        try:
            caps = await self.orchestrator.capabilities(endpoint)
        except TinyMLaaSError as exc:  # offline or quiet: it is reconciled when it next reports
            log.info("cannot read what %s runs: %s", endpoint, exc.message)
            return
        facts = DeviceFacts.from_capabilities(caps)
        self._runs[endpoint] = (facts.firmware_version, facts.model_sha256)
        await self._reconcile(endpoint, facts.firmware_version, facts.model_sha256)

    def updated(self, endpoint: str, *, build_id: str | None, facts: DeviceFacts) -> None:
        """A deployment succeeded: what the device runs now (written with the next batch)."""
        self._queue(Sighting(endpoint=endpoint, facts=facts, build_id=build_id,
                             events=[("updated", f"to build {build_id}" if build_id else "updated")]))
        self._runs[endpoint] = (facts.firmware_version, facts.model_sha256)

    def facts_now(self, endpoint: str, timeout_s: float = 60.0) -> DeviceFacts:
        """What a connected device reports now (read on the service's loop; call it from a thread)."""
        import concurrent.futures

        if self._loop is None:
            raise RuntimeError("the registry has not started")
        future = asyncio.run_coroutine_threadsafe(self.orchestrator.capabilities(endpoint), self._loop)
        try:
            return DeviceFacts.from_capabilities(future.result(timeout_s))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise DeviceUnreachable(f"device '{endpoint}' did not say what it is within {timeout_s:.0f} s"
                                    ) from None

    def board(self, name: str) -> Board:
        return get_board(self.targets_dir, name)

    # -- the operator's use cases -------------------------------------------------------------------
    def _check_board(self, board: str | None) -> None:
        if board is None:
            return
        boards = load_boards(self.targets_dir)
        if board not in boards:
            raise InvalidInput(f"board '{board}' is unknown; boards: {', '.join(sorted(boards))}")

    def _secure(self) -> bool:
        return self.orchestrator.join_info().security != "off"

    async def pre_register(self, spec: DeviceSpec, kind: DeviceKind = "device") -> PreRegistered:
        """Record a device (or bridge) before it first connects, with its credentials when the
        service needs them (shown once)."""
        self._check_board(spec.board)
        rec = await asyncio.to_thread(self.store.devices.add, spec, kind=kind, state="expected")
        self._known[spec.endpoint] = (kind, "expected")
        credentials: DeviceCredentials | None = None
        if self._secure():
            try:
                credentials = (provision(self.orchestrator, self.signer, spec.endpoint, replace=False)
                               if self.signer else self.orchestrator.provision(spec.endpoint))
            except Conflict:  # it had credentials already (provisioned by hand): it keeps them
                credentials = None
        return PreRegistered(device=rec, credentials=credentials)

    async def pre_register_bridge(self, spec: BridgeSpec) -> PreRegistered:
        return await self.pre_register(DeviceSpec(endpoint=spec.endpoint, name=spec.name,
                                                  location=spec.location, notes=spec.notes), "bridge")

    async def edit(self, endpoint: str, patch: DevicePatch) -> RegisteredDevice:
        self._check_board(patch.board)
        return self.live(await asyncio.to_thread(self.store.devices.patch, endpoint, patch))

    async def approve(self, endpoint: str) -> RegisteredDevice:
        rec = await asyncio.to_thread(self.store.devices.get, endpoint)
        if rec.state != "pending":
            raise Conflict(f"'{endpoint}' is {rec.state}, not waiting for approval")
        rec = await asyncio.to_thread(self.store.devices.set_state, endpoint, "active", "approved")
        self._known[endpoint] = (rec.kind, "active")
        return self.live(rec)

    def _shut_out(self, endpoint: str, why: str) -> None:
        """Revoke its credentials (when devices have any) and end its session."""
        if self._secure():
            with contextlib.suppress(NotFound):
                self.orchestrator.revoke(endpoint)
        self.orchestrator.disconnect(endpoint, why)

    async def decommission(self, endpoint: str, reason: str = "") -> RegisteredDevice:
        """Its credentials are revoked and it is kept out; its record and history stay."""
        rec = await asyncio.to_thread(self.store.devices.get, endpoint)
        if rec.state == "decommissioned":
            raise Conflict(f"'{endpoint}' is decommissioned already")
        self._known[endpoint] = (rec.kind, "decommissioned")
        self._shut_out(endpoint, "decommissioned")
        await self.flush()  # its "offline" first, then the decommissioning
        return await asyncio.to_thread(self.store.devices.set_state, endpoint, "decommissioned",
                                       reason or "decommissioned by an operator")

    async def delete(self, endpoint: str) -> None:
        """Forget the device (credentials revoked, session ended); its history stays."""
        await asyncio.to_thread(self.store.devices.get, endpoint)
        self._shut_out(endpoint, "deleted")
        await self.flush()
        await asyncio.to_thread(self.store.devices.delete, endpoint)
        self._known.pop(endpoint, None)

    # -- reading -------------------------------------------------------------------------------------
    def live(self, rec: RegisteredDevice) -> RegisteredDevice:
        """The record with the orchestrator's live fields (online, lifetime, objects, ...)."""
        try:
            live = self.orchestrator.device(rec.endpoint)
        except NotFound:
            return rec.model_copy(update={"online": False})
        return rec.model_copy(update=live.model_dump(exclude={"endpoint"}))

    async def find(self, query: DeviceQuery) -> tuple[list[RegisteredDevice], int]:
        """One page of the devices matching the query, and how many match (what the orchestrator
        said so far is written first, so a device that just joined is in it)."""
        await self.flush()
        records, total = await asyncio.to_thread(self.store.devices.query, query)
        return [self.live(r) for r in records], total

    async def get(self, endpoint: str) -> RegisteredDevice:
        await self.flush()
        rec = await asyncio.to_thread(self.store.devices.find, endpoint)
        if rec is None:  # connected, and not written yet: the orchestrator knows it
            try:
                live = self.orchestrator.device(endpoint)
            except NotFound:
                live = None
            if live is None or not live.online:
                raise NotFound(f"no device '{endpoint}' is registered")
            return RegisteredDevice(**live.model_dump())
        return self.live(rec)

    async def detail(self, endpoint: str) -> RegisteredDeviceDetail:
        """The record and, when it is online, what it reports about itself now."""
        detail = RegisteredDeviceDetail(device=await self.get(endpoint))
        if detail.device.online:
            caps, error = await capabilities_now(self.orchestrator, endpoint)
            detail.capabilities, detail.capabilities_error = caps, error
        return detail

    async def history(self, endpoint: str, limit: int = 100) -> list[DeviceEvent]:
        return await asyncio.to_thread(self.store.devices.events, endpoint, limit)

    # -- bridges ---------------------------------------------------------------------------------------
    async def _bridge(self, rec: RegisteredDevice) -> Bridge:
        boards = await asyncio.to_thread(self.store.devices.all_matching,
                                         DeviceQuery(bridge=rec.endpoint, include_decommissioned=True))
        live = self.live(rec)
        return Bridge(endpoint=rec.endpoint, name=rec.name, online=live.online, state=rec.state,
                      last_seen=rec.last_seen, location=rec.location, notes=rec.notes,
                      devices=[self.live(d) for d in boards])

    async def bridges(self) -> list[Bridge]:
        await self.flush()
        found = await asyncio.to_thread(self.store.devices.all_matching, DeviceQuery(kind="bridge"))
        return [await self._bridge(b) for b in found]

    async def bridge_detail(self, endpoint: str) -> Bridge:
        await self.flush()
        return await self._bridge(await asyncio.to_thread(self.store.devices.get, endpoint, "bridge"))

    async def remove_bridge(self, endpoint: str) -> Bridge:
        """The bridge and the boards behind it are decommissioned (credentials revoked, kept out);
        the bridge's record goes, the boards' records and everyone's history stay."""
        bridge = await self.bridge_detail(endpoint)
        for dev in bridge.devices:
            if dev.state != "decommissioned":
                await self.decommission(dev.endpoint, f"its bridge '{endpoint}' was removed")
        await self.delete(endpoint)
        return await self._bridge_after(bridge)

    async def _bridge_after(self, bridge: Bridge) -> Bridge:
        boards = [await self.get(d.endpoint) for d in bridge.devices]
        return bridge.model_copy(update={"online": False, "state": "decommissioned", "devices": boards})
