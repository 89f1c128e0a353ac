"""Hybrid "cloud & TinyML" inference: cloud endpoints (a model version's float variant served by the
service), the policy a device escalates by, and hybrid evaluations.

Who may do what: a cloud endpoint publishes a model version for inference, like registering or
evaluating one, and changes no device, so a data scientist may create one; giving a device a
policy changes what it does in the field and the traffic and cost it makes, so that takes an
operator; reading is for everyone signed in.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from tinymlaas.api.deps import CloudDep, OrchestratorDep, RunnerDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Operator, Scientist, Viewer
from tinymlaas.cost.models import (
    DeviceHybrid,
    Endpoint,
    EndpointCreate,
    HybridEvaluation,
    HybridEvaluationRequest,
    PolicyRequest,
)
from tinymlaas.errors import NotFound
from tinymlaas.models import Job
from tinymlaas.services import hybrid as service

router = APIRouter(tags=["hybrid"])


@router.post("/hybrid/endpoints", status_code=status.HTTP_201_CREATED, responses=problems(404, 422))
def create_endpoint(body: EndpointCreate, store: StoreDep, user: Scientist) -> Endpoint:
    """Serve a model version's float (or int8) variant to the devices that run its int8 model."""
    return service.create_endpoint(store, body)


@router.get("/hybrid/endpoints", responses=problems(404))
def list_endpoints(store: StoreDep, cloud: CloudDep, user: Viewer, model: str | None = None
                   ) -> list[Endpoint]:
    return service.endpoints(store, cloud, model)


@router.get("/hybrid/endpoints/{endpoint_id}", responses=problems(404))
def read_endpoint(endpoint_id: str, store: StoreDep, cloud: CloudDep, user: Viewer) -> Endpoint:
    """The endpoint and what it served: escalations answered and their interpreter time."""
    return service.endpoint(store, cloud, endpoint_id)


@router.delete("/hybrid/endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=problems(404))
def delete_endpoint(endpoint_id: str, store: StoreDep, cloud: CloudDep, user: Scientist) -> Response:
    """The endpoint and the policies naming it: their devices' escalations are refused from now on
    and they answer locally."""
    service.delete_endpoint(store, cloud, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/devices/{endpoint}/hybrid", responses=problems(404, 409, 422, 502, 504))
async def set_policy(endpoint: str, body: PolicyRequest, store: StoreDep, orch: OrchestratorDep,
                     cloud: CloudDep, user: Operator) -> DeviceHybrid:
    """Give a device its policy through its orchestrator: escalate an inference whose top class's
    probability is below the threshold to the cloud endpoint."""
    return await service.set_policy(store, orch, cloud, endpoint, body)


@router.get("/devices/{endpoint}/hybrid", responses=problems(404))
async def read_policy(endpoint: str, store: StoreDep, orch: OrchestratorDep, cloud: CloudDep,
                      user: Viewer) -> DeviceHybrid:
    """The policy, the device's own count of local and escalated inferences (when online), and the
    escalations the service answered for it."""
    return await service.device_hybrid(store, orch, cloud, endpoint)


@router.delete("/devices/{endpoint}/hybrid", responses=problems(404, 502, 504))
async def drop_policy(endpoint: str, store: StoreDep, orch: OrchestratorDep, cloud: CloudDep,
                      user: Operator) -> DeviceHybrid:
    """Every inference answered on the device again."""
    return await service.drop_policy(store, orch, cloud, endpoint)


@router.post("/hybrid/evaluations", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 409, 422))
def start_evaluation(body: HybridEvaluationRequest, store: StoreDep, runner: RunnerDep,
                     orch: OrchestratorDep, cloud: CloudDep, user: Scientist) -> Job:
    """A job: local-only, hybrid and cloud-only accuracy and the escalation rate on a dataset split,
    in process and, with a device, through it."""
    return service.start_evaluation(store, runner, orch, cloud, body)


@router.get("/hybrid/evaluations", responses=problems(404))
def list_evaluations(store: StoreDep, user: Viewer, model: str | None = None) -> list[HybridEvaluation]:
    return store.cost.evaluations(store.model(model).id if model else None)


@router.get("/hybrid/evaluations/{evaluation_id}", responses=problems(404))
def read_evaluation(evaluation_id: str, store: StoreDep, user: Viewer) -> HybridEvaluation:
    return store.cost.evaluation(evaluation_id)


@router.get("/hybrid/evaluations/{evaluation_id}/plot.png", response_class=Response, responses=problems(404))
def evaluation_plot(evaluation_id: str, store: StoreDep, user: Viewer) -> Response:
    """Accuracy and escalation rate against the threshold."""
    rec = store.cost.evaluation(evaluation_id)
    if rec.plot_sha256 is None:
        raise NotFound(f"hybrid evaluation '{evaluation_id}' has no plot")
    return Response(store.artifacts.get(rec.plot_sha256).read_bytes(), media_type="image/png")
