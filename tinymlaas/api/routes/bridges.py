"""Bridges: processes fronting several boards, each board its own device."""

from __future__ import annotations

from fastapi import APIRouter, status

from tinymlaas.api.deps import RegistryDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Operator, Viewer
from tinymlaas.fleet.models import Bridge, BridgeSpec, PreRegistered

router = APIRouter(prefix="/bridges", tags=["bridges"])


@router.get("")
async def list_bridges(registry: RegistryDep, user: Viewer) -> list[Bridge]:
    """Every bridge with the boards behind it and their health."""
    return await registry.bridges()


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(409, 422))
async def pre_register_bridge(body: BridgeSpec, registry: RegistryDep, user: Operator) -> PreRegistered:
    """Register a bridge before it first connects, with its own credentials (shown once)."""
    return await registry.pre_register_bridge(body)


@router.get("/{endpoint}", responses=problems(404))
async def read_bridge(endpoint: str, registry: RegistryDep, user: Viewer) -> Bridge:
    return await registry.bridge_detail(endpoint)


@router.delete("/{endpoint}", responses=problems(404))
async def remove_bridge(endpoint: str, registry: RegistryDep, user: Operator) -> Bridge:
    """Remove a bridge: it and its boards are decommissioned (credentials revoked); the boards'
    records and every history stay."""
    return await registry.remove_bridge(endpoint)
