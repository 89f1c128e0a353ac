"""The CFO's comparison: cloud vs TinyML vs hybrid inference for a model version on a board, every
figure with its source, as JSON or as a chart. Reads only: any signed-in user may compare."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from tinymlaas.api.deps import SettingsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Viewer
from tinymlaas.cost.chart import chart
from tinymlaas.cost.models import Comparison, CostRequest, Figure, InputSpec
from tinymlaas.services import cost as service

router = APIRouter(prefix="/cost", tags=["cost"])


class CostInputs(BaseModel):
    inputs: list[InputSpec]
    core_energy: dict[str, Figure]


@router.get("/inputs")
def cost_inputs(user: Viewer) -> CostInputs:
    """Every input of the cost model: unit, meaning, documented default with its reference, or what
    measures it; and the energy per instruction of each Cortex-M family."""
    return CostInputs(inputs=service.input_specs(), core_energy=service.core_figures())


@router.post("/compare", responses=problems(404, 422))
def compare(body: CostRequest, store: StoreDep, settings: SettingsDep, user: Viewer) -> Comparison:
    """Cost per device per year and per million inferences for cloud, TinyML and hybrid; the
    cheapest; break-even fleet size and rate; battery life; each figure's source. Stores nothing."""
    return service.compare(store, settings, body)


@router.post("/chart", response_class=Response, responses={
    **problems(404, 422), 200: {"content": {"image/png": {}, "image/svg+xml": {}},
                                "description": "cost per device per year against fleet size"}})
def cost_chart(body: CostRequest, store: StoreDep, settings: SettingsDep, user: Viewer,
               format: Literal["png", "svg"] = Query("png")) -> Response:
    """The comparison as a chart: each option's cost per device per year against the fleet size."""
    media = {"png": "image/png", "svg": "image/svg+xml"}[format]
    return Response(chart(service.compare(store, settings, body), format), media_type=media)
