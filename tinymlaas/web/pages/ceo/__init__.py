"""The CEO's dashboard: the fleet at a glance, updated live by server-sent events."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from tinymlaas.api.deps import OrchestratorDep, StoreDep
from tinymlaas.api.security import Viewer
from tinymlaas.models_telemetry import FleetOverview, Quantiles
from tinymlaas.services.telemetry import overview
from tinymlaas.web.session import PageViewer
from tinymlaas.web.site import Link, Section, page, render
from tinymlaas.web.sse import event, stream

router = APIRouter(prefix="/ui/ceo", include_in_schema=False)
HOURS = 24
#: At most this many points on the online/offline line (a day of one-minute ticks is 1,440).
MAX_POINTS = 288


def _key(fleet: FleetOverview) -> str:
    """What the page shows changed (the overview's own time always does)."""
    return hashlib.sha256(fleet.model_dump_json(exclude={"at"}).encode()).hexdigest()[:16]


def _history(fleet: FleetOverview) -> dict[str, Any]:
    points = fleet.history[:: max(1, -(-len(fleet.history) // MAX_POINTS))]
    return {"type": "line", "data": {
        "labels": [p.at.astimezone(UTC).strftime("%H:%M") for p in points],
        "datasets": [{"label": "online", "data": [p.online for p in points], "color": "#16a34a",
                      "fill": True, "pointRadius": 0},
                     {"label": "offline", "data": [p.offline for p in points], "color": "#dc2626",
                      "fill": True, "pointRadius": 0}]},
        "options": {"scales": {"y": {"beginAtZero": True, "ticks": {"precision": 0}}}}}


def _counts(rows: list[Any], label: str) -> dict[str, Any]:
    return {"type": "bar", "data": {"labels": [r.version for r in rows],
                                    "datasets": [{"label": label, "data": [r.devices for r in rows]}]},
            "options": {"indexAxis": "y", "plugins": {"legend": {"display": False}},
                        "scales": {"x": {"beginAtZero": True, "ticks": {"precision": 0}}}}}


def _inferences(fleet: FleetOverview) -> dict[str, Any]:
    start = fleet.at.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    hours = [start + timedelta(hours=i) for i in range(HOURS)]
    boards = sorted({i.board for i in fleet.inferences})
    counts = {(i.hour, i.board): i.count for i in fleet.inferences}
    return {"type": "bar", "data": {
        "labels": [h.strftime("%H:00") for h in hours],
        "datasets": [{"label": b, "data": [counts.get((h, b), 0) for h in hours]} for b in boards]},
        "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True,
                                                            "ticks": {"precision": 0}}}}}


def _spread(fleet: FleetOverview, figure: str, unit: str) -> dict[str, Any]:
    rows = [(b.board, getattr(b, figure)) for b in fleet.boards if getattr(b, figure) is not None]
    qs: list[Quantiles] = [q for _, q in rows]
    return {"type": "bar", "data": {"labels": [b for b, _ in rows], "datasets": [
        {"type": "bar", "label": f"p10 to p90 ({unit})", "data": [[q.p10, q.p90] for q in qs],
         "color": "#93c5fd", "borderColor": "#2563eb", "borderWidth": 1},
        {"type": "line", "label": f"median ({unit})", "data": [q.p50 for q in qs], "showLine": False,
         "color": "#1e3a8a", "pointRadius": 5},
        {"type": "line", "label": f"max ({unit})", "data": [q.max for q in qs], "showLine": False,
         "color": "#9ca3af", "pointStyle": "line", "pointRadius": 8}]},
        "options": {"scales": {"y": {"beginAtZero": True}}}}


def view(fleet: FleetOverview) -> dict[str, Any]:
    return {"fleet": fleet, "key": _key(fleet), "history_chart": _history(fleet),
            "firmware_chart": _counts(fleet.firmware, "devices"),
            "models_chart": _counts(fleet.models, "devices"),
            "inferences_chart": _inferences(fleet),
            "latency_chart": _spread(fleet, "latency_us", "µs"),
            "instructions_chart": _spread(fleet, "instructions", "instructions")}


@router.get("/")
async def dashboard(request: Request, user: PageViewer, store: StoreDep, orch: OrchestratorDep
                    ) -> HTMLResponse:
    fleet = await overview(store, orch, hours=HOURS)
    return page(request, user, "ceo/dashboard.html", title="Fleet dashboard", **view(fleet))


@router.get("/events")
async def events(request: Request, user: Viewer, store: StoreDep, orch: OrchestratorDep,
                 since: str = "") -> StreamingResponse:
    """The dashboard's body again whenever what it shows changed (checked every 2 s)."""
    last = since

    async def poll() -> list[str]:
        nonlocal last
        fleet = await overview(store, orch, hours=HOURS)
        key = _key(fleet)
        if key == last:
            return []
        last = key
        return [event("fleet", render("ceo/_fleet.html", now=datetime.now(UTC), **view(fleet)))]

    return stream(request, poll, every_s=2.0)


section = Section(name="ceo", title="Fleet", router=router, order=10,
                  links=(Link("Dashboard", "/ui/ceo/"),), templates=Path(__file__).parent / "templates")
