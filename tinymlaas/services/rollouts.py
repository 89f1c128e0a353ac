"""Groups and rollouts: one release (a build per board) to a group of devices, in waves.

A rollout is planned and checked once, when it is created: the group's devices,
a finished build for each one's board that it can run (board, CPU, runtime), the
waves. Then the :class:`RolloutEngine` drives it on the API's event loop: a wave's
devices are updated (at most ``deploy_concurrency`` at once over all rollouts);
when the failed share of a wave goes above the error threshold the rollout pauses
at once (no device of it starts any more, the ones under way finish); a wave that
ends below the success threshold pauses it too; otherwise the next wave starts
(after an operator's approval, if asked for). A failed device that no longer runs
what it ran before is put back on its previous build. Pause, resume, approve,
cancel and emergency stop (which also cancels the updates under way).

Everything is kept in the store as it happens (written in batches), so a service
that restarts carries on with every unfinished rollout: a device that was being
updated is checked (the registry knows what it runs) and updated again if needed.
The engine's functions are the way in for anything that deploys to a group (an
API route, a pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tinymlaas.config import Settings
from tinymlaas.errors import Conflict, InvalidInput, TinyMLaaSError
from tinymlaas.fleet.models import (
    DONE,
    FAILED,
    FINAL_STATES,
    DeviceFacts,
    DeviceQuery,
    Group,
    GroupSpec,
    RegisteredDevice,
    Rollout,
    RolloutSpec,
    RolloutTarget,
    wave_sizes,
)
from tinymlaas.models import Build, Deployment, JobState, Package, UpdateOutcome
from tinymlaas.plugins.base import Orchestrator
from tinymlaas.services.deployments import facts_after, incompatibilities, packages, update_device
from tinymlaas.services.registry import DeviceRegistry
from tinymlaas.signing import Signer
from tinymlaas.store import Store
from tinymlaas.targets import load_boards

log = logging.getLogger(__name__)
#: Devices named in one refusal, at most (a whole fleet's worth would be unreadable).
MAX_NAMED = 10
#: A device whose update a restart interrupted: how often, and how far apart, it is looked at
#: and updated again.
RESUME_ATTEMPTS, RESUME_WAIT_S = 3, 5.0


# -- groups --------------------------------------------------------------------------------------

def create_group(store: Store, targets_dir: Path, spec: GroupSpec) -> Group:
    if spec.board is not None and spec.board not in load_boards(targets_dir):
        raise InvalidInput(f"board '{spec.board}' is unknown")
    return store.rollouts.add_group(spec)


def group_members(store: Store, name: str) -> list[RegisteredDevice]:
    """The group's devices now (decommissioned ones are out of service, so out of every group);
    an explicit list naming a device that is not registered is refused, naming it."""
    group = store.rollouts.group(name)
    if not group.devices:
        return store.devices.all_matching(DeviceQuery(tags=group.tags, board=group.board))
    found = {ep: store.devices.find(ep) for ep in group.devices}
    missing = [ep for ep, rec in found.items() if rec is None]
    if missing:
        raise InvalidInput(f"group '{name}' names devices that are not registered: "
                           f"{', '.join(missing[:MAX_NAMED])}")
    return [r for r in found.values() if r is not None and r.state != "decommissioned"]


# -- the engine -----------------------------------------------------------------------------------

@dataclass
class _Control:
    """A running rollout's in-memory side: its wake-up, its updates under way, its watchers."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    halt: bool = False
    stopping: bool = False
    inflight: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    watchers: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None


@dataclass
class _Plan:
    """What a driver needs about its rollout's builds (read once per run)."""

    builds: dict[str, Build]
    packages: dict[str, tuple[Package, Package | None]]
    all_builds: list[Build]
    download_base: str


def _now() -> datetime:
    return datetime.now(UTC)


class RolloutEngine:
    """Drives every unfinished rollout; lives in the API's lifespan."""

    def __init__(self, store: Store, orchestrator: Orchestrator, registry: DeviceRegistry,
                 settings: Settings, signer: Signer) -> None:
        self.store = store
        self.orchestrator = orchestrator
        self.registry = registry
        self.settings, self.signer = settings, signer
        self._slots = asyncio.Semaphore(settings.deploy_concurrency)
        self._controls: dict[str, _Control] = {}
        self._targets: dict[str, dict[str, dict[str, Any]]] = {}
        self._deployments: list[Deployment] = []
        self._outcomes: list[tuple[str, UpdateOutcome]] = []
        self._write_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._progress_due: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Carry on with every rollout a previous process left unfinished."""
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="rollouts-flush")
        for rid in await asyncio.to_thread(self.store.rollouts.unfinished):
            rollout = await asyncio.to_thread(self.store.rollouts.get, rid)
            await asyncio.to_thread(self.store.update_job, rollout.job_id, state=JobState.running,
                                    error=None, step="carrying on after a restart of the service")
            self._launch(rid)

    async def stop(self) -> None:
        """Stop driving (the rollouts stay as they are in the store, and carry on at the next start)."""
        tasks = [c.task for c in self._controls.values() if c.task is not None]
        tasks += [t for c in self._controls.values() for t in c.inflight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()

    def _launch(self, rid: str) -> None:
        ctl = self._controls.setdefault(rid, _Control())
        ctl.task = asyncio.get_running_loop().create_task(self._drive(rid, ctl), name=f"rollout-{rid}")

    # -- writing, in batches ------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            try:
                await self.flush()
            except Exception:  # the next batch may go through: say so, keep driving
                log.exception("writing rollout progress failed")

    async def flush(self) -> None:
        """Write the targets' changes, new deployments and their outcomes in one transaction."""
        async with self._write_lock:
            targets, self._targets = self._targets, {}
            deployments, self._deployments = self._deployments, []
            outcomes, self._outcomes = self._outcomes, []
            if targets or deployments or outcomes:
                await asyncio.to_thread(self.store.rollouts.record, targets, deployments, outcomes)

    def _target(self, rid: str, t: RolloutTarget, **changes: Any) -> RolloutTarget:
        self._targets.setdefault(rid, {}).setdefault(t.endpoint, {}).update(changes)
        t = t.model_copy(update={**changes, "updated_at": _now()})
        self._tell(rid, {"event": "device", **t.model_dump(mode="json")})
        return t

    def _tell(self, rid: str, event: dict[str, Any]) -> None:
        for q in self._controls.get(rid, _Control()).watchers:
            q.put_nowait(event)

    # -- creating -----------------------------------------------------------------------------------
    async def create(self, spec: RolloutSpec, *, download_base: str, created_by: str = "") -> Rollout:
        """Plan and check a rollout (every refusal now, as InvalidInput/NotFound), then start it."""
        await self.registry.flush()
        plan, targets = await asyncio.to_thread(self._plan, spec)
        job = await asyncio.to_thread(self.store.new_job, "rollout")
        sizes = wave_sizes(spec.waves, len(targets))
        waves = [w for w, n in enumerate(sizes) for _ in range(n)]
        rollout = await asyncio.to_thread(lambda: self.store.rollouts.create(
            rollout_id=uuid.uuid4().hex[:12], name=spec.name or f"{spec.kind} to {spec.group}",
            group=spec.group, kind=spec.kind, builds={b.target: b.id for b in plan.values()}, sizes=sizes,
            success_threshold=spec.success_threshold, error_threshold=spec.error_threshold,
            manual_approval=spec.manual_approval, rollback=spec.rollback, job_id=job.id,
            download_base=download_base, created_by=created_by,
            targets=[(d.endpoint, w, board, plan[board].id) for (d, board), w in zip(targets, waves,
                                                                                       strict=True)]))
        await asyncio.to_thread(self.store.update_job, job.id, state=JobState.running,
                                step=f"wave 1 of {len(sizes)}")
        self._launch(rollout.id)
        return rollout

    def _plan(self, spec: RolloutSpec) -> tuple[dict[str, Build], list[tuple[RegisteredDevice, str]]]:
        """Blocking: the builds by board and the group's devices with their board, all checked."""
        self.store.rollouts.group(spec.group)
        boards = load_boards(self.settings.targets_dir)
        by_board: dict[str, Build] = {}
        for build_id in spec.builds:
            build = self.store.build(build_id)
            if build.firmware is None or build.module is None:
                raise InvalidInput(f"build '{build_id}' has not finished; there is nothing to send")
            if build.target in by_board:
                raise InvalidInput(f"builds '{by_board[build.target].id}' and '{build_id}' are both for "
                                   f"board '{build.target}': give one build per board")
            by_board[build.target] = build
        members = sorted(group_members(self.store, spec.group), key=lambda d: d.endpoint)
        if not members:
            raise InvalidInput(f"group '{spec.group}' has no devices")
        problems, targets = [], []
        for dev in members:
            facts = dev.reported or DeviceFacts()
            board = facts.board or dev.board
            match = by_board.get(board or "")
            if match is None:
                problems.append(f"device '{dev.endpoint}' is board '{board or 'unknown'}', and no build is "
                                f"(builds are for {', '.join(sorted(by_board))})")
                continue
            if facts.board is None:
                facts = facts.model_copy(update={"board": board})
            problems += incompatibilities(match, boards[match.target], spec.kind, facts, dev.endpoint)
            targets.append((dev, match.target))
        if problems:
            more = f" (and {len(problems) - MAX_NAMED} more)" if len(problems) > MAX_NAMED else ""
            raise InvalidInput("; ".join(problems[:MAX_NAMED]) + more, group=spec.group)
        return by_board, targets

    # -- the operator's controls ----------------------------------------------------------------------
    def _control(self, rid: str) -> _Control:
        return self._controls.setdefault(rid, _Control())

    async def _set(self, rid: str, **fields: Any) -> Rollout:
        """Change the rollout (its job says so first: whoever sees the rollout ended or paused
        sees its job ended or saying why)."""
        await self.flush()
        state = fields.get("state")
        if state is not None and state != "running":
            job_id = (await asyncio.to_thread(self.store.rollouts.get, rid)).job_id
            if state in FINAL_STATES:
                await self._finish_job(job_id, state, fields.get("reason", ""))
            else:  # paused, waiting for an approval: the job says why
                await asyncio.to_thread(self.store.update_job, job_id,
                                        step=f"{state.replace('_', ' ')}: {fields.get('reason', '')}")
        rollout = await asyncio.to_thread(lambda: self.store.rollouts.set(rid, **fields))
        self._tell(rid, {"event": "rollout", **rollout.model_dump(mode="json")})
        return rollout

    async def _transition(self, rid: str, allowed: set[str], state: str, reason: str,
                          **fields: Any) -> Rollout:
        ctl = self._control(rid)
        async with ctl.lock:
            rollout = await asyncio.to_thread(self.store.rollouts.get, rid)
            if rollout.state not in allowed:
                raise Conflict(f"rollout '{rid}' is {rollout.state}; it cannot be made {state}")
            ctl.halt = state != "running"
            rollout = await self._set(rid, state=state, reason=reason, **fields)
            ctl.wake.set()
            return rollout

    async def pause(self, rid: str, reason: str = "") -> Rollout:
        return await self._transition(rid, {"running", "waiting_approval"}, "paused",
                                      reason or "paused by an operator")

    async def resume(self, rid: str, reason: str = "") -> Rollout:
        """Carry on; the thresholds of the wave it stopped in no longer hold it (the operator
        has looked at it); a wave that had ended goes on to the next."""
        rollout = await asyncio.to_thread(self.store.rollouts.get, rid)
        wave = rollout.current_wave
        if rollout.waves[wave].state == "done" and rollout.state == "paused":
            return await self._advance(rid, {"paused"}, reason or "resumed by an operator", waive=wave)
        return await self._transition(rid, {"paused"}, "running", reason or "resumed by an operator",
                                      waive=wave)

    async def approve(self, rid: str, reason: str = "") -> Rollout:
        return await self._advance(rid, {"waiting_approval"}, reason or "next wave approved")

    async def _advance(self, rid: str, allowed: set[str], reason: str, **fields: Any) -> Rollout:
        rollout = await asyncio.to_thread(self.store.rollouts.get, rid)
        if rollout.current_wave + 1 >= len(rollout.waves):
            return await self._transition(rid, allowed, "succeeded", reason, **fields)
        return await self._transition(rid, allowed, "running", reason, **fields,
                                      current_wave=rollout.current_wave + 1)

    async def cancel(self, rid: str, reason: str = "") -> Rollout:
        """No device starts any more; the updates under way finish."""
        return await self._end(rid, "cancelled", reason or "cancelled by an operator", stop_now=False)

    async def emergency_stop(self, rid: str, reason: str = "") -> Rollout:
        """No device starts any more, and the updates under way are abandoned now."""
        return await self._end(rid, "stopped", reason or "emergency stop", stop_now=True)

    async def _end(self, rid: str, state: str, reason: str, *, stop_now: bool) -> Rollout:
        ctl = self._control(rid)
        await self._transition(rid, {"running", "paused", "waiting_approval"}, state, reason)
        if stop_now:
            ctl.stopping = True
            tasks = list(ctl.inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in await asyncio.to_thread(self.store.rollouts.targets, rid, states=["pending"]):
            if t.endpoint not in ctl.inflight:  # one under way ends as it ends
                self._target(rid, t, state="cancelled", detail=reason)
        await self.flush()
        return await asyncio.to_thread(self.store.rollouts.get, rid)

    # -- watching -------------------------------------------------------------------------------------
    async def watch(self, rid: str) -> AsyncIterator[dict[str, Any]]:
        """The rollout now, then every change (devices and the rollout), until it ends."""
        rollout = await asyncio.to_thread(self.store.rollouts.get, rid)
        ctl = self._control(rid)
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        ctl.watchers.add(q)

        async def events() -> AsyncIterator[dict[str, Any]]:
            try:
                yield {"event": "rollout", **rollout.model_dump(mode="json")}
                if rollout.state in FINAL_STATES:
                    return
                while True:
                    event = await q.get()
                    yield event
                    if event["event"] == "rollout" and event["state"] in FINAL_STATES:
                        return
            finally:
                ctl.watchers.discard(q)

        return events()

    # -- driving --------------------------------------------------------------------------------------
    async def _drive(self, rid: str, ctl: _Control) -> None:
        try:
            plan = await asyncio.to_thread(self._load_plan, rid)
            while True:
                rollout = await asyncio.to_thread(self.store.rollouts.get, rid)
                if rollout.state in FINAL_STATES:
                    return
                if rollout.state != "running":
                    await self._progress(rollout)
                    ctl.wake.clear()
                    await ctl.wake.wait()
                    continue
                ctl.halt = False
                await self._run_wave(rid, ctl, rollout, plan)
                await self.flush()
                async with ctl.lock:
                    await self._end_of_wave(rid)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must still end the rollout, visibly
            log.exception("rollout %s crashed", rid)
            with contextlib.suppress(Exception):
                await self._set(rid, state="failed", reason=f"internal error: {exc}")

    def _load_plan(self, rid: str) -> _Plan:
        rollout = self.store.rollouts.get(rid)
        builds = {board: self.store.build(bid) for board, bid in rollout.builds.items()}
        return _Plan(builds={b.id: b for b in builds.values()},
                     packages={b.id: packages(self.store, b, rollout.kind, self.signer)
                               for b in builds.values()},
                     all_builds=self.store.builds(), download_base=self.store.rollouts.download_base(rid))

    async def _run_wave(self, rid: str, ctl: _Control, rollout: Rollout, plan: _Plan) -> None:
        wave = rollout.current_wave
        targets = await asyncio.to_thread(self.store.rollouts.targets, rid, wave=wave)
        # (running: under way when the service stopped; one still under way here is not started twice)
        todo = [t for t in targets if t.state in ("pending", "running") and t.endpoint not in ctl.inflight]
        await self._progress(rollout)
        for t in todo:
            await self._slots.acquire()
            if ctl.halt:
                self._slots.release()
                break
            task = asyncio.get_running_loop().create_task(
                self._one(rid, ctl, rollout, t, plan, len(targets)), name=f"rollout-{rid}-{t.endpoint}")
            ctl.inflight[t.endpoint] = task
            task.add_done_callback(self._done_callback(ctl, t.endpoint))
        if ctl.inflight:
            await asyncio.gather(*ctl.inflight.values(), return_exceptions=True)

    def _done_callback(self, ctl: _Control, endpoint: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_: asyncio.Task[None]) -> None:
            ctl.inflight.pop(endpoint, None)
            self._slots.release()

        return done

    async def _one(self, rid: str, ctl: _Control, rollout: Rollout, t: RolloutTarget, plan: _Plan,
                   wave_size: int) -> None:
        """Update one device; on failure, roll it back if it changed, and pause the rollout if the
        wave's failures went above the error threshold."""
        build = plan.builds[t.build_id]
        before = await asyncio.to_thread(self.store.devices.find, t.endpoint)
        facts = (before.reported if before else None) or DeviceFacts()
        interrupted = t.state == "running"  # its update was under way when the service stopped
        if interrupted:
            previous = next((b for b in plan.all_builds if b.id == t.previous_build_id), None)
        else:
            previous = _previous_build(before, build, rollout.kind, plan.all_builds)
            t = self._target(rid, t, state="running", previous_build_id=previous.id if previous else None,
                             detail="")
        try:
            outcome = await self._update(rid, rollout, t.endpoint, build, plan, interrupted=interrupted)
        except asyncio.CancelledError:
            if ctl.stopping:  # an emergency stop (a shutdown leaves it running: it is checked at the start)
                self._target(rid, t, state="stopped", detail="abandoned by an emergency stop")
            raise
        if outcome is None:
            self._target(rid, t, state="succeeded", detail="found running the build after a restart")
            self.registry.updated(t.endpoint, build_id=build.id, facts=DeviceFacts())
            return
        if outcome.succeeded:
            self._target(rid, t, state="succeeded", detail=outcome.result)
            self.registry.updated(t.endpoint, build_id=build.id, facts=facts_after(outcome))
            await self._progress_soon(rid)
            return
        why = outcome.detail or outcome.result or "failed"
        changed = _changed(facts, outcome)
        if rollout.rollback and previous is not None and changed:
            back = await self._deploy(rid, rollout, t.endpoint, previous, plan, rollback=True)
            if back.succeeded:
                self.registry.updated(t.endpoint, build_id=previous.id, facts=facts_after(back))
            self._target(rid, t, state="rolled_back" if back.succeeded else "rollback_failed",
                         detail=f"{why}; back on build {previous.id}" if back.succeeded else
                         f"{why}; rolling back to build {previous.id} failed too: "
                         f"{back.detail or back.result}")
        else:
            kept = "" if changed else " (it still runs what it ran before)"
            self._target(rid, t, state="failed", detail=why + kept)
        await self._check_errors(rid, ctl, t.wave, wave_size)

    async def _update(self, rid: str, rollout: Rollout, endpoint: str, build: Build, plan: _Plan, *,
                      interrupted: bool) -> UpdateOutcome | None:
        """The device's update; None when it turns out to run the build already. An update the
        service was stopped in the middle of may still be finishing on the device: it is looked
        at first, and tried again a few times."""
        if interrupted:  # the device may not have joined the restarted service yet
            await self._online(endpoint, RESUME_WAIT_S * 24)
        for attempt in range(RESUME_ATTEMPTS if interrupted else 1):
            if interrupted and await self._runs_now(endpoint, build, rollout.kind):
                return None
            outcome = await self._deploy(rid, rollout, endpoint, build, plan)
            if outcome.succeeded or attempt == RESUME_ATTEMPTS - 1:
                break
            await asyncio.sleep(RESUME_WAIT_S)
        return outcome

    async def _online(self, endpoint: str, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(TinyMLaaSError):
                if self.orchestrator.device(endpoint).online:
                    return
            await asyncio.sleep(0.5)

    async def _runs_now(self, endpoint: str, build: Build, kind: Literal["firmware", "model"]) -> bool:
        try:
            caps = await self.orchestrator.capabilities(endpoint)
        except TinyMLaaSError:
            return False
        return _runs(DeviceFacts.from_capabilities(caps), build, kind)

    async def _deploy(self, rid: str, rollout: Rollout, endpoint: str, build: Build, plan: _Plan, *,
                      rollback: bool = False) -> UpdateOutcome:
        if build.id not in plan.packages:  # a rollback target: packed once, when first needed
            plan.packages[build.id] = await asyncio.to_thread(packages, self.store, build, rollout.kind,
                                                                self.signer)
        package, fallback = plan.packages[build.id]
        dep = Deployment(id=uuid.uuid4().hex[:12], job_id=rollout.job_id, build_id=build.id,
                         endpoint=endpoint, kind=rollout.kind, package_sha256=package.sha256,
                         created_at=_now())
        self._deployments.append(dep)
        if not rollback:
            self._targets.setdefault(rid, {}).setdefault(endpoint, {})["deployment_id"] = dep.id
        else:
            self._targets.setdefault(rid, {}).setdefault(endpoint, {})["rollback_deployment_id"] = dep.id
        try:
            outcome = await update_device(self.orchestrator, endpoint, rollout.kind, package,
                                          download_base=plan.download_base, fallback=fallback)
        except TinyMLaaSError as exc:
            outcome = UpdateOutcome(endpoint=endpoint, kind=rollout.kind, package_sha256=package.sha256,
                                    succeeded=False, detail=exc.message)
        self._outcomes.append((dep.id, outcome))
        return outcome

    async def _check_errors(self, rid: str, ctl: _Control, wave: int, size: int) -> None:
        await self.flush()
        rollout = await asyncio.to_thread(self.store.rollouts.get, rid)
        failed = sum(n for s, n in rollout.waves[wave].counts.items() if s in FAILED)
        if rollout.state == "running" and not rollout.waves[wave].waived and \
                failed / size > rollout.error_threshold:
            async with ctl.lock:
                ctl.halt = True
                await self._set(rid, state="paused", reason=(
                    f"wave {wave + 1}: {failed} of {size} devices failed ({failed / size:.0%}), above the "
                    f"error threshold of {rollout.error_threshold:.0%}"))
        await self._progress_soon(rid)

    async def _end_of_wave(self, rid: str) -> None:
        """A wave's devices have all finished (or it was halted): next wave, approval, pause or end."""
        rollout = await asyncio.to_thread(self.store.rollouts.get, rid)
        if rollout.state != "running":
            return
        wave = rollout.waves[rollout.current_wave]
        if wave.state != "done":
            return  # halted part way (the drive loop sees why)
        size = wave.size
        ok = wave.counts.get("succeeded", 0)
        failed = sum(n for s, n in wave.counts.items() if s in FAILED)
        number = rollout.current_wave + 1
        waived = wave.waived
        if not waived and failed / size > rollout.error_threshold:
            await self._set(rid, state="paused", reason=(
                f"wave {number}: {failed} of {size} devices failed ({failed / size:.0%}), above the error "
                f"threshold of {rollout.error_threshold:.0%}"))
        elif not waived and ok / size < rollout.success_threshold:
            await self._set(rid, state="paused", reason=(
                f"wave {number}: {ok} of {size} devices succeeded ({ok / size:.0%}), below the success "
                f"threshold of {rollout.success_threshold:.0%}"))
        elif number == len(rollout.waves):
            total_failed = sum(n for w in rollout.waves for s, n in w.counts.items() if s in FAILED)
            await self._set(rid, state="succeeded", reason=f"every wave done; {total_failed} device(s) failed"
                            if total_failed else "every device updated")
        elif rollout.manual_approval:
            await self._set(rid, state="waiting_approval",
                            reason=f"wave {number} done: wave {number + 1} waits for an approval")
        else:
            await self._set(rid, current_wave=number, reason=f"wave {number} done")

    # -- the rollout's job ---------------------------------------------------------------------------------
    async def _progress_soon(self, rid: str) -> None:
        """At most a few job updates a second, whatever the fleet size."""
        if rid in self._progress_due:
            return
        self._progress_due.add(rid)
        await asyncio.sleep(0.25)
        self._progress_due.discard(rid)
        await self.flush()
        rollout = await asyncio.to_thread(self.store.rollouts.get, rid)
        await self._progress(rollout)
        self._tell(rid, {"event": "progress", **rollout.model_dump(mode="json")})

    async def _progress(self, rollout: Rollout) -> None:
        if rollout.state in FINAL_STATES:
            return
        done = sum(n for w in rollout.waves for s, n in w.counts.items() if s in DONE)
        failed = sum(n for w in rollout.waves for s, n in w.counts.items() if s in FAILED)
        wave = rollout.waves[rollout.current_wave]
        wave_done = sum(n for s, n in wave.counts.items() if s in DONE)
        step = (f"wave {rollout.current_wave + 1} of {len(rollout.waves)}: {wave_done} of {wave.size} done"
                f"{f', {failed} failed in all' if failed else ''}")
        if rollout.state != "running":
            step = f"{rollout.state.replace('_', ' ')}: {rollout.reason}"
        await asyncio.to_thread(self.store.update_job, rollout.job_id, step=step,
                                progress=done / max(rollout.devices, 1))

    async def _finish_job(self, job_id: str, state: str, reason: str) -> None:
        if state == "succeeded":
            await asyncio.to_thread(self.store.update_job, job_id, state=JobState.succeeded, step="done",
                                    progress=1.0, result={"reason": reason})
        else:
            await asyncio.to_thread(self.store.update_job, job_id, state=JobState.failed,
                                    error=f"rollout {state}: {reason}")


def _runs(facts: DeviceFacts, build: Build, kind: Literal["firmware", "model"]) -> bool:
    """Whether the device (as last reported) runs what ``build`` installs."""
    assert build.firmware is not None
    if kind == "model":
        return facts.model_sha256 == build.firmware.model_sha256
    return (facts.firmware_version == build.firmware.version
            and facts.model_sha256 == build.firmware.model_sha256)


def _changed(before: DeviceFacts, outcome: UpdateOutcome) -> bool:
    """Whether a failed update left the device running something else than before."""
    fw = outcome.firmware_after is not None and before.firmware_version is not None and \
        outcome.firmware_after != before.firmware_version
    model = outcome.model_sha256 is not None and before.model_sha256 is not None and \
        outcome.model_sha256 != before.model_sha256
    return fw or model


def _previous_build(device: RegisteredDevice | None, build: Build, kind: Literal["firmware", "model"],
                    builds: list[Build]) -> Build | None:
    """The build a device runs before its update (to roll it back to): the one this service last
    put on it, else the newest build for its board matching what it reports."""
    if device is None:
        return None
    by_id = {b.id: b for b in builds}
    known = by_id.get(device.build_id or "")
    if known is not None and known.target == build.target and known.id != build.id:
        return known
    facts = device.reported or DeviceFacts()
    for b in builds:  # newest first
        if b.target != build.target or b.firmware is None or b.id == build.id:
            continue
        if _runs(facts, b, kind):
            return b
    return None


async def members(store: Store, registry: DeviceRegistry, name: str) -> list[RegisteredDevice]:
    """A group's devices now, with their live state."""
    await registry.flush()
    found = await asyncio.to_thread(group_members, store, name)
    return [registry.live(d) for d in found]
