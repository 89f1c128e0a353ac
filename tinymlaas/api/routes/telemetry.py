"""The fleet's telemetry: what the CEO's dashboard shows, as data."""

from __future__ import annotations

from fastapi import APIRouter, Query

from tinymlaas.api.deps import OrchestratorDep, StoreDep
from tinymlaas.api.security import Viewer
from tinymlaas.models_telemetry import FleetOverview
from tinymlaas.services.telemetry import overview

router = APIRouter(prefix="/telemetry", tags=["telemetry"])


@router.get("/fleet")
async def fleet(store: StoreDep, orch: OrchestratorDep, user: Viewer,
          hours: int = Query(24, ge=1, le=168, description="how far back")) -> FleetOverview:
    """Devices online/offline now and over time, firmware and models in the field, inferences per
    hour, latency and instruction counts per board, recent failures."""
    return await overview(store, orch, hours=hours)
