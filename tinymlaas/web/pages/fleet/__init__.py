"""The operator's fleet: the device registry (filters and pages, pre-register, edit, approve,
decommission), bridges and the boards behind them, groups, rollouts in waves watched live with
their controls, and the toolchains registered at run time."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from tinymlaas.api.deps import RegistryDep, RolloutsDep, SettingsDep, StoreDep
from tinymlaas.api.security import Operator, Viewer
from tinymlaas.auth import Role, User
from tinymlaas.errors import NotFound, TinyMLaaSError
from tinymlaas.fleet.models import (
    FINAL_STATES,
    BridgeSpec,
    DevicePatch,
    DeviceQuery,
    DeviceSpec,
    GroupSpec,
    RolloutSpec,
)
from tinymlaas.services import rollouts as service
from tinymlaas.store import Store
from tinymlaas.targets import load_boards
from tinymlaas.web.forms import fields, record, words
from tinymlaas.web.session import PageError, PageViewer
from tinymlaas.web.site import Link, Section, fragment, page, render
from tinymlaas.web.sse import DONE, event, stream

router = APIRouter(prefix="/ui/fleet", include_in_schema=False)
OPERATOR = frozenset({Role.operator})
#: Rows of the registry on one page: what an operator picks (a whole fleet of 1,000 at most).
PAGE_SIZES = (100, 1000)
Text = Annotated[str, Query(max_length=200)]


def _may(user: User) -> bool:
    return user.role.allows(OPERATOR)


def _refresh() -> dict[str, str]:
    """htmx reloads the page: what changed shows everywhere on it."""
    return {"HX-Refresh": "true"}


# -- the registry ---------------------------------------------------------------------------------

def _query(board: str, tags: str, online: str, firmware: str, state: str, bridge: str,
           decommissioned: bool, limit: int, offset: int) -> DeviceQuery:
    return record(DeviceQuery, board=board, tags=words(tags), online=online, firmware=firmware, state=state,
                  bridge=bridge, include_decommissioned=decommissioned or None, limit=limit, offset=offset)


class Filters:
    """The registry's filters as query parameters (the page's URL keeps them)."""

    def __init__(self, board: Text = "", tags: Text = "", online: Literal["", "true", "false"] = "",
                 firmware: Text = "", state: Text = "", bridge: Text = "", decommissioned: bool = False,
                 limit: Annotated[int, Query(ge=1, le=1000)] = PAGE_SIZES[0],
                 offset: Annotated[int, Query(ge=0)] = 0) -> None:
        self.board, self.tags, self.online, self.firmware = board, tags, online, firmware
        self.state, self.bridge, self.decommissioned = state, bridge, decommissioned
        self.limit, self.offset = limit, offset

    def query(self) -> DeviceQuery:
        return _query(self.board, self.tags, self.online, self.firmware, self.state, self.bridge,
                      self.decommissioned, self.limit, self.offset)


async def _rows(registry: Any, f: Filters) -> dict[str, Any]:
    devices, total = await registry.find(f.query())
    return {"devices": devices, "total": total, "f": f}


@router.get("/registry")
async def registry_page(request: Request, user: PageViewer, registry: RegistryDep, settings: SettingsDep,
                        f: Annotated[Filters, Depends()]) -> HTMLResponse:
    boards = sorted(load_boards(settings.targets_dir))
    return page(request, user, "fleet/registry.html", title="Registry", boards=boards,
                page_sizes=PAGE_SIZES, can_operate=_may(user), **await _rows(registry, f))


@router.get("/registry/rows")
async def registry_rows(user: Viewer, registry: RegistryDep, f: Annotated[Filters, Depends()]
                        ) -> HTMLResponse:
    """The rows for the filters and page (htmx swaps them)."""
    return fragment("fleet/_registry_rows.html", **await _rows(registry, f))


@router.post("/registry")
async def pre_register(request: Request, user: Operator, registry: RegistryDep) -> HTMLResponse:
    """The same record and call as POST /devices: credentials, if any, are shown this once."""
    f = await fields(request)
    spec = record(DeviceSpec, **{**f, "tags": words(f.get("tags", ""))})
    done = await registry.pre_register(spec)
    html = render("fleet/_registered.html", done=done)
    return HTMLResponse(html, headers={"HX-Trigger": "registry-changed"})


@router.get("/registry/{endpoint}")
async def device_page(request: Request, endpoint: str, user: PageViewer, registry: RegistryDep,
                      settings: SettingsDep) -> HTMLResponse:
    try:
        device = await registry.get(endpoint)
    except NotFound as exc:
        raise PageError(exc) from None
    history = await registry.history(endpoint, 50)
    return page(request, user, "fleet/device.html", title=f"Registry: {endpoint}", device=device,
                history=history, boards=sorted(load_boards(settings.targets_dir)), can_operate=_may(user))


@router.patch("/registry/{endpoint}")
async def edit(request: Request, endpoint: str, user: Operator, registry: RegistryDep) -> HTMLResponse:
    """The same record and call as PATCH /devices/{endpoint} (a field left empty is emptied; the
    board, once known, stays)."""
    f = await fields(request)
    patch = record(DevicePatch, keep_empty=True, **{**f, "tags": words(f.get("tags", "")),
                                                    "board": f.get("board") or None})
    device = await registry.edit(endpoint, patch)
    return fragment("fleet/_saved.html", device=device)


@router.post("/registry/{endpoint}/decommission")
async def decommission(endpoint: str, user: Operator, registry: RegistryDep,
                       reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    await registry.decommission(endpoint, reason)
    return Response(status_code=204, headers=_refresh())


@router.post("/registry/{endpoint}/approve")
async def approve(endpoint: str, user: Operator, registry: RegistryDep) -> Response:
    await registry.approve(endpoint)
    return Response(status_code=204, headers=_refresh())


# -- bridges ----------------------------------------------------------------------------------------

@router.get("/bridges")
async def bridges_page(request: Request, user: PageViewer, registry: RegistryDep) -> HTMLResponse:
    return page(request, user, "fleet/bridges.html", title="Bridges", bridges=await registry.bridges(),
                can_operate=_may(user))


@router.post("/bridges")
async def pre_register_bridge(request: Request, user: Operator, registry: RegistryDep) -> HTMLResponse:
    """The same record and call as POST /bridges (its credentials shown once)."""
    done = await registry.pre_register_bridge(record(BridgeSpec, **await fields(request)))
    return fragment("fleet/_registered.html", done=done)


@router.delete("/bridges/{endpoint}")
async def remove_bridge(endpoint: str, user: Operator, registry: RegistryDep) -> Response:
    await registry.remove_bridge(endpoint)
    return Response(status_code=204, headers=_refresh())


# -- groups -----------------------------------------------------------------------------------------

@router.get("/groups")
async def groups_page(request: Request, user: PageViewer, store: StoreDep, registry: RegistryDep,
                      settings: SettingsDep) -> HTMLResponse:
    groups = await asyncio.to_thread(store.rollouts.groups)
    sizes: dict[str, int | str] = {}
    for g in groups:
        try:
            sizes[g.name] = len(await service.members(store, registry, g.name))
        except TinyMLaaSError as exc:  # a list naming a device that is not registered: say so in its row
            sizes[g.name] = exc.message
    return page(request, user, "fleet/groups.html", title="Groups", groups=groups, sizes=sizes,
                boards=sorted(load_boards(settings.targets_dir)), can_operate=_may(user))


@router.post("/groups")
async def create_group(request: Request, user: Operator, store: StoreDep, settings: SettingsDep) -> Response:
    """The same record and checks as POST /groups."""
    f = await fields(request)
    lists = {"tags": words(f.get("tags", "")), "devices": words(f.get("devices", ""))}
    spec = record(GroupSpec, **{**f, **lists})
    await asyncio.to_thread(service.create_group, store, settings.targets_dir, spec)
    return Response(status_code=204, headers=_refresh())


@router.delete("/groups/{name}")
def delete_group(name: str, user: Operator, store: StoreDep) -> Response:
    store.rollouts.delete_group(name)
    return Response(status_code=204, headers=_refresh())


# -- rollouts ---------------------------------------------------------------------------------------

def _finished_builds(store: Store) -> list[tuple[Any, str]]:
    names = {m.id: f"{m.name}:{m.version}" for m in store.models()}
    return [(b, names.get(b.model_id, b.model_id)) for b in store.builds()
            if b.firmware is not None and b.module is not None]


@router.get("/rollouts")
async def rollouts_page(request: Request, user: PageViewer, store: StoreDep) -> HTMLResponse:
    def data() -> dict[str, Any]:
        return {"rollouts": store.rollouts.all(100), "groups": store.rollouts.groups(),
                "builds": _finished_builds(store), "defaults": RolloutSpec(group="-", builds=["-"])}

    return page(request, user, "fleet/rollouts.html", title="Rollouts", can_operate=_may(user),
                **await asyncio.to_thread(data))


@router.post("/rollouts")
async def create_rollout(request: Request, user: Operator, engine: RolloutsDep) -> Response:
    """The same record, checks and engine as POST /rollouts; the browser then watches it."""
    f = await fields(request, lists=("builds",))
    f["waves"] = words(f.get("waves", ""))
    for flag in ("manual_approval", "rollback"):
        f[flag] = flag in f
    for share in ("success_threshold", "error_threshold"):  # the form asks for percentages
        with contextlib.suppress(KeyError, ValueError):
            f[share] = float(f[share]) / 100
    spec = record(RolloutSpec, **f)
    rollout = await engine.create(spec, download_base=str(request.base_url).rstrip("/"), created_by=user.name)
    return Response(status_code=204, headers={"HX-Redirect": f"/ui/fleet/rollouts/{rollout.id}"})


def _rollout_view(store: Store, rollout_id: str) -> dict[str, Any]:
    rollout = store.rollouts.get(rollout_id)
    return {"r": rollout, "targets": store.rollouts.targets(rollout_id, limit=1000),
            "ended": rollout.state in FINAL_STATES}


@router.get("/rollouts/{rollout_id}")
async def rollout_page(request: Request, rollout_id: str, user: PageViewer, store: StoreDep) -> HTMLResponse:
    try:
        view = await asyncio.to_thread(_rollout_view, store, rollout_id)
    except NotFound as exc:
        raise PageError(exc) from None
    return page(request, user, "fleet/rollout.html", title=f"Rollout {rollout_id}", can_operate=_may(user),
                **view)


@router.get("/rollouts/{rollout_id}/events")
async def rollout_events(request: Request, rollout_id: str, user: Viewer, store: StoreDep
                         ) -> StreamingResponse:
    """The rollout's waves and devices again whenever they change, until it ends."""
    await asyncio.to_thread(store.rollouts.get, rollout_id)  # 404 before the stream starts
    last = ""
    can_operate = _may(user)

    async def poll() -> list[str]:
        nonlocal last
        view = await asyncio.to_thread(_rollout_view, store, rollout_id)
        key = view["r"].model_dump_json() + "".join(f"{t.endpoint}{t.state}" for t in view["targets"])
        if key == last:
            return []
        last = key
        out = [event("rollout", render("fleet/_rollout.html", can_operate=can_operate, **view))]
        return [*out, DONE] if view["ended"] else out

    return stream(request, poll, every_s=0.5)


Action = Literal["pause", "resume", "approve", "cancel", "stop"]


@router.post("/rollouts/{rollout_id}/{action}")
async def control(rollout_id: str, action: Action, user: Operator, engine: RolloutsDep,
                  reason: Annotated[str, Form(max_length=500)] = "") -> HTMLResponse:
    """The same calls as POST /rollouts/{id}/pause, resume, approve, cancel and stop."""
    do = {"pause": engine.pause, "resume": engine.resume, "approve": engine.approve,
          "cancel": engine.cancel, "stop": engine.emergency_stop}[action]
    rollout = await do(rollout_id, reason)
    return fragment("fleet/_control.html", r=rollout, action=action)


# -- toolchains ---------------------------------------------------------------------------------------

@router.get("/toolchains")
async def toolchains_page(request: Request, user: PageViewer, store: StoreDep) -> HTMLResponse:
    toolchains = await asyncio.to_thread(store.toolchains.all)
    return page(request, user, "fleet/toolchains.html", title="Toolchains", toolchains=toolchains)


section = Section(
    name="fleet", title="Fleet", router=router, order=22,
    templates=Path(__file__).parent / "templates",
    links=(Link("Registry", "/ui/fleet/registry"), Link("Bridges", "/ui/fleet/bridges"),
           Link("Groups", "/ui/fleet/groups"), Link("Rollouts", "/ui/fleet/rollouts"),
           Link("Toolchains", "/ui/fleet/toolchains")))
