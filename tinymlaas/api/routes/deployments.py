"""Deployments: a build's firmware (FOTA) or its model only (SOTA) to a device, as a job."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from tinymlaas.api.deps import OrchestratorDep, RegistryDep, RunnerDep, SignerDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Operator, Viewer
from tinymlaas.models import Deployment, Job
from tinymlaas.services.deployments import start_deployment

router = APIRouter(tags=["deployments"])


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    build: str | None = Field(None, description="a finished build's id")
    artifact: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                 description="or an OS image already in the artifact store (FOTA only)")


class DeploymentAccepted(BaseModel):
    deployment: Deployment
    job: Job


@router.post("/devices/{endpoint}/firmware", status_code=status.HTTP_202_ACCEPTED,
             responses=problems(404, 422, 504))
def deploy_firmware(endpoint: str, body: DeployRequest, request: Request, store: StoreDep,
                    orch: OrchestratorDep, runner: RunnerDep, registry: RegistryDep, signer: SignerDep,
                    user: Operator) -> DeploymentAccepted:
    """FOTA: the device downloads the OS image, checks its SHA-256, installs it and reboots. A build
    for another board or CPU than the device reports is refused (422) before anything is sent."""
    dep, job = start_deployment(store, orch, runner, signer, kind="firmware", endpoint=endpoint,
                                build_id=body.build, artifact=body.artifact,
                                download_base=str(request.base_url).rstrip("/"), registry=registry)
    return DeploymentAccepted(deployment=dep, job=job)


@router.post("/devices/{endpoint}/model", status_code=status.HTTP_202_ACCEPTED,
             responses=problems(404, 422, 504))
def deploy_model(endpoint: str, body: DeployRequest, request: Request, store: StoreDep,
                 orch: OrchestratorDep, runner: RunnerDep, registry: RegistryDep, signer: SignerDep,
                 user: Operator) -> DeploymentAccepted:
    """SOTA: only the inference module, swapped without stopping the device (FOTA if it cannot).
    A build the device cannot run (board, CPU, runtime) is refused (422) before anything is sent."""
    dep, job = start_deployment(store, orch, runner, signer, kind="model", endpoint=endpoint,
                                build_id=body.build, artifact=body.artifact,
                                download_base=str(request.base_url).rstrip("/"), registry=registry)
    return DeploymentAccepted(deployment=dep, job=job)


@router.get("/deployments")
def list_deployments(store: StoreDep, user: Viewer, endpoint: str | None = None) -> list[Deployment]:
    return store.deployments(endpoint)


@router.get("/deployments/{deployment_id}", responses=problems(404))
def read_deployment(deployment_id: str, store: StoreDep, user: Viewer) -> Deployment:
    return store.deployment(deployment_id)
