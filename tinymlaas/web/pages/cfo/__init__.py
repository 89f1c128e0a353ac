"""The CFO's page: cloud vs TinyML vs hybrid for a model on a board. Every input of the cost
model is a field, shown with its unit, its documented default and reference or what measures it;
the comparison comes back with each figure's source, the break-even and the service's own chart;
and the hybrid figures measured so far (escalation rates, accuracies, the cloud endpoints' work)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tinymlaas.api.deps import CloudDep, SettingsDep, StoreDep
from tinymlaas.api.security import Viewer
from tinymlaas.cost.chart import chart
from tinymlaas.cost.model import LABELS
from tinymlaas.cost.models import CostRequest
from tinymlaas.errors import InvalidInput
from tinymlaas.services import cost as service
from tinymlaas.services import hybrid
from tinymlaas.targets import load_boards
from tinymlaas.web.forms import fields, record
from tinymlaas.web.session import PageViewer
from tinymlaas.web.site import Link, Section, fragment, page

router = APIRouter(prefix="/ui/cfo", include_in_schema=False)
#: Form fields that give an input of the cost model are named ``in.NAME``.
INPUT = "in."


@router.get("/cost")
async def cost_page(request: Request, user: PageViewer, store: StoreDep, settings: SettingsDep,
                    cloud: CloudDep) -> HTMLResponse:
    def data() -> dict[str, Any]:
        models = store.models()
        return {"models": models[::-1], "names": {m.id: f"{m.name}:{m.version}" for m in models},
                "boards": sorted(load_boards(settings.targets_dir)), "inputs": service.input_specs(),
                "core_energy": service.core_figures(), "evaluations": store.cost.evaluations(None),
                "endpoints": hybrid.endpoints(store, cloud, None)}

    return page(request, user, "cfo/cost.html", title="Cost", **await asyncio.to_thread(data))


@router.post("/cost/compare")
async def compare(request: Request, user: Viewer, store: StoreDep, settings: SettingsDep) -> HTMLResponse:
    """The same request and comparison as POST /cost/compare, with the chart of POST /cost/chart."""
    f = await fields(request)
    given: dict[str, float] = {}
    for key, value in f.items():
        if key.startswith(INPUT) and value.strip():
            try:
                given[key[len(INPUT):]] = float(value)
            except ValueError:
                raise InvalidInput(f"inputs.{key[len(INPUT):]}: '{value}' is not a number") from None
    body = record(CostRequest, model=f.get("model"), board=f.get("board"), threshold=f.get("threshold"),
                  inputs=given)

    def run() -> dict[str, Any]:
        c = service.compare(store, settings, body)
        svg = base64.b64encode(chart(c, "svg")).decode()
        return {"c": c, "chart_uri": f"data:image/svg+xml;base64,{svg}"}

    return fragment("cfo/_comparison.html", labels=LABELS, **await asyncio.to_thread(run))


section = Section(name="cfo", title="Cost", router=router, order=35,
                  templates=Path(__file__).parent / "templates", links=(Link("Cost", "/ui/cfo/cost"),))
