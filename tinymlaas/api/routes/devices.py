"""Devices: how they join, the registry (pre-register, edit, approve, decommission, delete,
list with filters), capabilities, inferences, results and package downloads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tinymlaas.api.deps import OrchestratorDep, RegistryDep, RunnerDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import DEVICE, Operator, Scientist, Viewer, is_user_token
from tinymlaas.fleet.models import (
    DeviceEvent,
    DevicePatch,
    DeviceQuery,
    DeviceSpec,
    PreRegistered,
    Reason,
    RegisteredDevice,
    RegisteredDeviceDetail,
)
from tinymlaas.models import InferenceReport, JoinInfo, QueuedRequest, TensorInput
from tinymlaas.services import devices as service

router = APIRouter(prefix="/devices", tags=["devices"])
server_router = APIRouter(tags=["devices"])


@server_router.get("/orchestrator", response_model_exclude_none=True)
# /lwm2m: its first name, when LwM2M was the only orchestrator
@server_router.get("/lwm2m", include_in_schema=False, response_model_exclude_none=True)
async def orchestration_server(orch: OrchestratorDep, user: Viewer) -> JoinInfo:
    """How devices join: the orchestrator plugin, where (LwM2M URI or poll path) and the security mode."""
    return orch.join_info()


@router.get("", responses=problems(422))
async def list_devices(query: Annotated[DeviceQuery, Query()], response: Response, registry: RegistryDep,
                       user: Viewer) -> list[RegisteredDevice]:
    """The registry's devices matching every filter, by endpoint, a page at a time (the header
    ``X-Total-Count`` says how many match); connected ones with the orchestrator's live fields."""
    page, total = await registry.find(query)
    response.headers["X-Total-Count"] = str(total)
    return page


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(409, 422))
async def pre_register(body: DeviceSpec, registry: RegistryDep, user: Operator) -> PreRegistered:
    """Register a device before it first connects: it is expected, and gets its credentials now
    (shown once) when the service's devices need them."""
    return await registry.pre_register(body)


@router.get("/{endpoint}", responses=problems(404))
async def read_device(endpoint: str, registry: RegistryDep, user: Viewer) -> RegisteredDeviceDetail:
    """The device record and, when it is online, what it reports about itself now."""
    return await registry.detail(endpoint)


@router.patch("/{endpoint}", responses=problems(404, 422))
async def edit_device(endpoint: str, body: DevicePatch, registry: RegistryDep, user: Operator
                      ) -> RegisteredDevice:
    return await registry.edit(endpoint, body)


@router.delete("/{endpoint}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404))
async def delete_device(endpoint: str, registry: RegistryDep, user: Operator) -> Response:
    """Forget a device: its credentials are revoked and its session ends; its history stays."""
    await registry.delete(endpoint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{endpoint}/decommission", responses=problems(404, 409))
async def decommission_device(endpoint: str, registry: RegistryDep, user: Operator,
                              body: Reason | None = None) -> RegisteredDevice:
    """Take a device out of service: credentials revoked, kept out, record and history kept."""
    return await registry.decommission(endpoint, body.reason if body else "")


@router.post("/{endpoint}/approve", responses=problems(404, 409))
async def approve_device(endpoint: str, registry: RegistryDep, user: Operator) -> RegisteredDevice:
    """Let in a device that joined unannounced and was held (setting ``devices.unknown = hold``)."""
    return await registry.approve(endpoint)


@router.get("/{endpoint}/history", responses=problems(404))
async def device_history(endpoint: str, registry: RegistryDep, user: Viewer,
                         limit: int = Query(100, ge=1, le=1000)) -> list[DeviceEvent]:
    """What happened to the device, newest first (kept after it is decommissioned or deleted)."""
    return await registry.history(endpoint, limit)


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: list[float] | None = Field(None, description="raw values of a one-input model's tensor")
    values: list[float] | None = Field(None, description="real values for a one-input model, quantized "
                                                          "with its input scale")
    inputs: list[TensorInput] | None = Field(None, description="every input tensor of a model with "
                                                                "several, in its order or by name")

    @model_validator(mode="after")
    def one_of(self) -> InferRequest:
        if sum(x is not None for x in (self.input, self.values, self.inputs)) != 1:
            raise ValueError("give one of 'input' (raw tensor values), 'values' (floats to quantize) "
                             "or 'inputs' (one of those per input tensor)")
        return self


@router.post("/{endpoint}/infer", response_model=InferenceReport,
             responses={**problems(404, 409, 422, 502, 504),
                        202: {"model": QueuedRequest, "description": "the device sleeps (queue mode): "
                              "the inference is queued as a job that runs when it next wakes"}})
async def infer(endpoint: str, body: InferRequest, orch: OrchestratorDep, runner: RunnerDep, store: StoreDep,
                user: Scientist) -> InferenceReport | JSONResponse:
    """One inference on the device, through the orchestration protocol."""
    out = await service.infer_or_queue(orch, runner, store, endpoint, values=body.values, raw=body.input,
                                       inputs=body.inputs)
    if isinstance(out, QueuedRequest):
        return JSONResponse(out.model_dump(mode="json"), status_code=202)
    return out


@router.get("/{endpoint}/results", response_class=StreamingResponse,
            responses={**problems(404, 409, 502, 504),
                       200: {"content": {"text/event-stream": {}},
                             "description": "one `inference` event per inference the device runs"}})
async def results(endpoint: str, orch: OrchestratorDep, user: Viewer,
                  count: int = Query(0, ge=0, description="stop after this many (0: never)")
                  ) -> StreamingResponse:
    """Server-sent events, one per inference the device runs (LwM2M Observe underneath).
    Whatever can be refused (unknown or offline device) is refused before the stream starts."""
    stream = await orch.subscribe(endpoint)

    async def events() -> AsyncIterator[str]:
        sent = 0
        async for report in stream:
            yield f"event: inference\ndata: {json.dumps(report.model_dump())}\n\n"
            sent += 1
            if count and sent >= count:
                return

    return StreamingResponse(events(), media_type="text/event-stream")


@router.get("/{endpoint}/packages/{sha256}", response_class=FileResponse, responses=problems(403, 404, 422),
            dependencies=DEVICE)
async def download_package(endpoint: str, sha256: str, request: Request, store: StoreDep,
                           orch: OrchestratorDep, grant: str | None = None) -> FileResponse:
    """A package sent to this device (FOTA/SOTA pull) while it is being updated, or to a signed-in
    user. Range requests resume a broken download."""
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    if not (token and is_user_token(store, token)):
        orch.authorize_download(endpoint, sha256, grant,
                                address=request.client.host if request.client else None, token=token)
    path = store.artifacts.get(sha256)
    return FileResponse(path, media_type="application/octet-stream",
                        headers={"ETag": f'"{sha256}"', "Cache-Control": "private, immutable"})
