"""Devices: inventory, capabilities, inferences, results and package downloads (FOTA/SOTA pulls)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, model_validator

from tinymlaas.api.deps import OrchestratorDep, StoreDep
from tinymlaas.edge.tflm import quantize
from tinymlaas.errors import InvalidInput, TinyMLaaSError
from tinymlaas.models import Device, InferenceReport

router = APIRouter(prefix="/devices", tags=["devices"])
server_router = APIRouter(tags=["devices"])


@server_router.get("/orchestrator")
@server_router.get("/lwm2m", include_in_schema=False)  # its first name, when LwM2M was the only one
def orchestration_server(orch: OrchestratorDep) -> dict[str, Any]:
    """How devices join: the orchestrator plugin, where (LwM2M URI or poll path) and the security mode."""
    describe = getattr(orch, "describe_server", None)
    return describe() if describe else {"plugin": orch.name}


@router.get("")
def list_devices(orch: OrchestratorDep) -> list[Device]:
    return orch.devices()


@router.get("/{endpoint}")
async def read_device(endpoint: str, orch: OrchestratorDep) -> dict[str, Any]:
    """The device record and, when it is online, what it reports about itself now."""
    device = orch.device(endpoint)
    body: dict[str, Any] = {"device": device.model_dump(), "capabilities": None}
    if device.online:
        try:
            body["capabilities"] = (await orch.capabilities(endpoint)).model_dump()
        except TinyMLaaSError as exc:  # the record is still worth showing; say why there is no more
            body["capabilities_error"] = exc.message
    return body


class InferRequest(BaseModel):
    input: list[float] | None = None
    values: list[float] | None = None

    @model_validator(mode="after")
    def one_of(self) -> InferRequest:
        if (self.input is None) == (self.values is None):
            raise ValueError("give either 'input' (raw tensor values) or 'values' (floats to quantize)")
        return self


@router.post("/{endpoint}/infer")
async def infer(endpoint: str, body: InferRequest, orch: OrchestratorDep) -> InferenceReport:
    """One inference on the device, through the orchestration protocol."""
    caps = await orch.capabilities(endpoint)
    spec = ((caps.tensors or {}).get("inputs") or [None])[0]
    if spec is None:
        raise InvalidInput(f"device '{endpoint}' does not describe its input tensor")
    dtype = np.dtype(spec["dtype"])
    n = int(np.prod(spec["shape"]))
    if body.values is not None and spec.get("scale") is not None:
        tensor = quantize(np.asarray(body.values), spec["scale"], spec["zero_point"], dtype)
    else:
        raw = np.asarray(body.input if body.input is not None else body.values, dtype=np.float64)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if raw.size and (raw.min() < info.min or raw.max() > info.max or np.any(raw != np.round(raw))):
                raise InvalidInput(f"input values must be {dtype.name} integers")
        tensor = raw.astype(dtype)
    if tensor.size != n:
        raise InvalidInput(f"the model on '{endpoint}' takes {n} input values, not {tensor.size}")
    return await orch.infer(endpoint, tensor.tobytes())


@router.get("/{endpoint}/results")
async def results(endpoint: str, orch: OrchestratorDep,
                  count: int = Query(0, ge=0, description="stop after this many (0: never)")
                  ) -> StreamingResponse:
    """Server-sent events, one per inference the device runs (LwM2M Observe underneath)."""
    orch.device(endpoint)

    async def events() -> AsyncIterator[str]:
        sent = 0
        async for report in orch.results(endpoint):
            yield f"event: inference\ndata: {json.dumps(report.model_dump())}\n\n"
            sent += 1
            if count and sent >= count:
                return

    return StreamingResponse(events(), media_type="text/event-stream")


@router.get("/{endpoint}/packages/{sha256}")
def download_package(endpoint: str, sha256: str, store: StoreDep, orch: OrchestratorDep,
                     grant: str | None = None) -> FileResponse:
    """A package sent to this device (FOTA/SOTA pull). Range requests resume a broken download."""
    orch.authorize_download(endpoint, sha256, grant)
    path = store.artifacts.get(sha256)
    return FileResponse(path, media_type="application/octet-stream",
                        headers={"ETag": f'"{sha256}"', "Cache-Control": "private, immutable"})
