"""Device credentials, provisioned per device by the orchestrator; the secret is shown once."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict

from tinymlaas.api.deps import OrchestratorDep, SignerDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Operator
from tinymlaas.models import DeviceCredentials
from tinymlaas.services.devices import provision

router = APIRouter(prefix="/devices", tags=["credentials"])


class ProvisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replace: bool = False


@router.post("/{endpoint}/credentials", status_code=status.HTTP_201_CREATED, responses=problems(409, 422))
async def create_credentials(endpoint: str, orch: OrchestratorDep, signer: SignerDep, user: Operator,
                    body: ProvisionRequest | None = None) -> DeviceCredentials:
    """New credentials for a device (OSCORE over LwM2M, a bearer token over HTTP pull); a device
    without them cannot join."""
    return provision(orch, signer, endpoint, replace=bool(body and body.replace))


@router.delete("/{endpoint}/credentials", status_code=status.HTTP_204_NO_CONTENT,
               responses=problems(404, 409))
async def revoke(endpoint: str, orch: OrchestratorDep, user: Operator) -> Response:
    """Revoke a device's credentials; it is dropped and cannot join again."""
    orch.revoke(endpoint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
