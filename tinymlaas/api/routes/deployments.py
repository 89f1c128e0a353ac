"""Deployments: a build's firmware (FOTA) or its model only (SOTA) to a device, as a job."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from tinymlaas.api.deps import OrchestratorDep, RunnerDep, StoreDep
from tinymlaas.errors import DeviceUnreachable, InvalidInput
from tinymlaas.models import Deployment, Package
from tinymlaas.services.deployments import firmware_package, module_package, run_deployment

router = APIRouter(tags=["deployments"])


class DeployRequest(BaseModel):
    build: str | None = Field(None, description="a finished build's id")
    artifact: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                 description="or an OS image already in the artifact store (FOTA only)")


def _start(kind: str, endpoint: str, body: DeployRequest, request: Request, store: Any,
           orch: Any, runner: Any) -> dict[str, Any]:
    if not orch.device(endpoint).online:
        raise DeviceUnreachable(f"device '{endpoint}' is offline")
    fallback = None
    if body.build:
        build = store.build(body.build)
        if kind == "firmware":
            package = firmware_package(store, build)
        else:
            package, fallback = module_package(store, build), firmware_package(store, build)
    elif body.artifact and kind == "firmware":
        size = store.artifacts.get(body.artifact).stat().st_size
        package = Package(sha256=body.artifact, size=size, kind="firmware")
    else:
        raise InvalidInput("give 'build' (a finished build), or 'artifact' for a firmware image")
    base = str(request.base_url).rstrip("/")  # unless the orchestrator has its own package_base_url
    job = store.new_job(f"deploy-{kind}")
    dep = store.add_deployment(endpoint=endpoint, kind=kind, package_sha256=package.sha256,
                               job_id=job.id, build_id=body.build)
    runner.submit_async(job, lambda p: run_deployment(store, orch, dep, package, download_base=base,
                                                      fallback=fallback, progress=p))
    return {"deployment": dep.model_dump(mode="json"), "job": job.model_dump(mode="json")}


@router.post("/devices/{endpoint}/firmware", status_code=status.HTTP_202_ACCEPTED)
async def deploy_firmware(endpoint: str, body: DeployRequest, request: Request, store: StoreDep,
                          orch: OrchestratorDep, runner: RunnerDep) -> dict[str, Any]:
    """FOTA: the device downloads the OS image, checks its SHA-256, installs it and reboots."""
    return _start("firmware", endpoint, body, request, store, orch, runner)


@router.post("/devices/{endpoint}/model", status_code=status.HTTP_202_ACCEPTED)
async def deploy_model(endpoint: str, body: DeployRequest, request: Request, store: StoreDep,
                       orch: OrchestratorDep, runner: RunnerDep) -> dict[str, Any]:
    """SOTA: only the inference module, swapped without stopping the device (FOTA if it cannot)."""
    return _start("model", endpoint, body, request, store, orch, runner)


@router.get("/deployments")
def list_deployments(store: StoreDep, endpoint: str | None = None) -> list[Deployment]:
    return store.deployments(endpoint)


@router.get("/deployments/{deployment_id}")
def read_deployment(deployment_id: str, store: StoreDep) -> Deployment:
    return store.deployment(deployment_id)
