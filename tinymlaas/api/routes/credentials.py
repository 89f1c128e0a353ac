"""Device credentials (OSCORE), provisioned per device; the secret is shown once."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from tinymlaas.api.deps import OrchestratorDep
from tinymlaas.errors import InvalidInput

router = APIRouter(prefix="/devices", tags=["credentials"])


class ProvisionRequest(BaseModel):
    replace: bool = False


def _security(orch: object) -> object:
    if not hasattr(orch, "provision"):
        raise InvalidInput(f"orchestrator '{getattr(orch, 'name', '?')}' has no device credentials")
    return orch


@router.post("/{endpoint}/credentials", status_code=status.HTTP_201_CREATED)
def provision(endpoint: str, orch: OrchestratorDep, body: ProvisionRequest | None = None) -> dict[str, str]:
    """New OSCORE credentials for a device (a device without them cannot register)."""
    return _security(orch).provision(endpoint, replace=bool(body and body.replace))  # type: ignore[attr-defined]


@router.delete("/{endpoint}/credentials", status_code=status.HTTP_204_NO_CONTENT)
def revoke(endpoint: str, orch: OrchestratorDep) -> Response:
    """Revoke a device's credentials; it is dropped and cannot register again."""
    _security(orch).revoke(endpoint)  # type: ignore[attr-defined]
    return Response(status_code=status.HTTP_204_NO_CONTENT)
