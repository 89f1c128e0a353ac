"""Devices: how they join, inventory, capabilities, inferences, results and package downloads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, model_validator

from tinymlaas.api.deps import OrchestratorDep, RunnerDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import DEVICE, Scientist, Viewer, is_user_token
from tinymlaas.models import Device, DeviceDetail, InferenceReport, JoinInfo, QueuedRequest
from tinymlaas.services import devices as service

router = APIRouter(prefix="/devices", tags=["devices"])
server_router = APIRouter(tags=["devices"])


@server_router.get("/orchestrator", response_model_exclude_none=True)
# /lwm2m: its first name, when LwM2M was the only orchestrator
@server_router.get("/lwm2m", include_in_schema=False, response_model_exclude_none=True)
async def orchestration_server(orch: OrchestratorDep, user: Viewer) -> JoinInfo:
    """How devices join: the orchestrator plugin, where (LwM2M URI or poll path) and the security mode."""
    return orch.join_info()


@router.get("")
async def list_devices(orch: OrchestratorDep, user: Viewer) -> list[Device]:
    return orch.devices()


@router.get("/{endpoint}", responses=problems(404))
async def read_device(endpoint: str, orch: OrchestratorDep, user: Viewer) -> DeviceDetail:
    """The device record and, when it is online, what it reports about itself now."""
    return await service.device_detail(orch, endpoint)


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: list[float] | None = None
    values: list[float] | None = None

    @model_validator(mode="after")
    def one_of(self) -> InferRequest:
        if (self.input is None) == (self.values is None):
            raise ValueError("give either 'input' (raw tensor values) or 'values' (floats to quantize)")
        return self


@router.post("/{endpoint}/infer", response_model=InferenceReport,
             responses={**problems(404, 409, 422, 502, 504),
                        202: {"model": QueuedRequest, "description": "the device sleeps (queue mode): "
                              "the inference is queued as a job that runs when it next wakes"}})
async def infer(endpoint: str, body: InferRequest, orch: OrchestratorDep, runner: RunnerDep, store: StoreDep,
                user: Scientist) -> InferenceReport | JSONResponse:
    """One inference on the device, through the orchestration protocol."""
    out = await service.infer_or_queue(orch, runner, store, endpoint, values=body.values, raw=body.input)
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
