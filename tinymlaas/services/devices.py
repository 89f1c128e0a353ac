"""Device use cases over whichever orchestrator runs: what a device is, one inference."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinymlaas.edge.tflm import quantize
from tinymlaas.errors import InvalidInput, TinyMLaaSError
from tinymlaas.models import DeviceCapabilities, DeviceDetail, InferenceReport
from tinymlaas.plugins.base import Orchestrator


async def device_detail(orch: Orchestrator, endpoint: str) -> DeviceDetail:
    """The device record and, when it is online, what it reports about itself now."""
    detail = DeviceDetail(device=orch.device(endpoint))
    if detail.device.online:
        try:
            detail.capabilities = await orch.capabilities(endpoint)
        except TinyMLaaSError as exc:  # the record is still worth showing; say why there is no more
            detail.capabilities_error = exc.message
    return detail


def input_tensor(caps: DeviceCapabilities, *, values: list[float] | None, raw: list[float] | None) -> bytes:
    """The raw input tensor for the model a device runs: ``values`` are quantized with its input
    scale, ``raw`` are taken as they are; either must fill the tensor exactly."""
    spec: dict[str, Any] | None = ((caps.tensors or {}).get("inputs") or [None])[0]
    if spec is None:
        raise InvalidInput(f"device '{caps.endpoint}' does not describe its input tensor")
    dtype = np.dtype(spec["dtype"])
    n = int(np.prod(spec["shape"]))
    if values is not None and spec.get("scale") is not None:
        tensor = quantize(np.asarray(values), spec["scale"], spec["zero_point"], dtype)
    else:
        given = np.asarray(raw if raw is not None else values, dtype=np.float64)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if given.size and (given.min() < info.min or given.max() > info.max
                               or np.any(given != np.round(given))):
                raise InvalidInput(f"input values must be {dtype.name} integers")
        tensor = given.astype(dtype)
    if tensor.size != n:
        raise InvalidInput(f"the model on '{caps.endpoint}' takes {n} input values, not {tensor.size}")
    return tensor.tobytes()


async def infer(orch: Orchestrator, endpoint: str, *, values: list[float] | None,
                raw: list[float] | None) -> InferenceReport:
    """One inference on the device, through the orchestration protocol."""
    caps = await orch.capabilities(endpoint)
    return await orch.infer(endpoint, input_tensor(caps, values=values, raw=raw))
