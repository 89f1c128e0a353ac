"""Rollouts: one release to a group in waves, with thresholds, approvals and rollback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import StreamingResponse

from tinymlaas.api.deps import RolloutsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Operator, Viewer
from tinymlaas.fleet.models import Reason, Rollout, RolloutSpec, RolloutTarget, TargetState

router = APIRouter(prefix="/rollouts", tags=["rollouts"])


@router.get("")
def list_rollouts(store: StoreDep, user: Viewer, limit: int = Query(100, ge=1, le=1000)) -> list[Rollout]:
    return store.rollouts.all(limit)


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(404, 422))
async def create_rollout(body: RolloutSpec, request: Request, engine: RolloutsDep, user: Operator) -> Rollout:
    """Plan the rollout and start it. Everything that can be refused is refused now: an unknown
    group or build, a build that has not finished, two builds for one board, a device with no
    build for its board or that cannot run it (board, CPU, runtime; naming both sides)."""
    return await engine.create(body, download_base=str(request.base_url).rstrip("/"), created_by=user.name)


@router.get("/{rollout_id}", responses=problems(404))
def read_rollout(rollout_id: str, store: StoreDep, user: Viewer) -> Rollout:
    """The rollout's state and each wave's devices by state."""
    return store.rollouts.get(rollout_id)


@router.get("/{rollout_id}/devices", responses=problems(404))
def rollout_devices(rollout_id: str, store: StoreDep, user: Viewer, wave: int | None = Query(None, ge=0),
                    state: TargetState | None = None, limit: int = Query(1000, ge=1, le=10_000),
                    offset: int = Query(0, ge=0, le=2**31 - 1)) -> list[RolloutTarget]:
    """Every device of the rollout: its wave, how its update went, what it had before."""
    return store.rollouts.targets(rollout_id, wave=wave, states=[state] if state else None, limit=limit,
                                  offset=offset)


@router.get("/{rollout_id}/events", response_class=StreamingResponse,
            responses={**problems(404),
                       200: {"content": {"text/event-stream": {}},
                             "description": "`rollout` (the whole state, first and on every change of it), "
                                            "`device` (one device's change) and `progress` events, "
                                            "until the rollout ends"}})
async def rollout_events(rollout_id: str, engine: RolloutsDep, user: Viewer) -> StreamingResponse:
    """Live progress as server-sent events."""
    stream = await engine.watch(rollout_id)

    async def events() -> AsyncIterator[str]:
        async for event in stream:
            data = {k: v for k, v in event.items() if k != "event"}
            yield f"event: {event['event']}\ndata: {json.dumps(data)}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post("/{rollout_id}/pause", responses=problems(404, 409))
async def pause(rollout_id: str, engine: RolloutsDep, user: Operator, body: Reason | None = None) -> Rollout:
    """No device of it starts any more; the updates under way finish."""
    return await engine.pause(rollout_id, body.reason if body else "")


@router.post("/{rollout_id}/resume", responses=problems(404, 409))
async def resume(rollout_id: str, engine: RolloutsDep, user: Operator, body: Reason | None = None) -> Rollout:
    """Carry on where it paused (the wave it paused in is no longer held by its thresholds)."""
    return await engine.resume(rollout_id, body.reason if body else "")


@router.post("/{rollout_id}/approve", responses=problems(404, 409))
async def approve(rollout_id: str, engine: RolloutsDep, user: Operator,
                  body: Reason | None = None) -> Rollout:
    """Start the next wave of a rollout waiting for an approval."""
    return await engine.approve(rollout_id, body.reason if body else "")


@router.post("/{rollout_id}/cancel", responses=problems(404, 409))
async def cancel(rollout_id: str, engine: RolloutsDep, user: Operator, body: Reason | None = None) -> Rollout:
    """End it: no device starts any more; the updates under way finish."""
    return await engine.cancel(rollout_id, body.reason if body else "")


@router.post("/{rollout_id}/stop", responses=problems(404, 409))
async def emergency_stop(rollout_id: str, engine: RolloutsDep, user: Operator,
                         body: Reason | None = None) -> Rollout:
    """Emergency stop: end it now, abandoning the updates under way."""
    return await engine.emergency_stop(rollout_id, body.reason if body else "")
