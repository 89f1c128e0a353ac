"""Device use cases over whichever orchestrator runs: what a device is, one inference."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from tinymlaas.edge.tflm import quantize
from tinymlaas.errors import InvalidInput, TinyMLaaSError
from tinymlaas.jobs import JobRunner
from tinymlaas.models import (
    DeviceCapabilities,
    DeviceCredentials,
    DeviceDetail,
    InferenceReport,
    QueuedRequest,
)
from tinymlaas.plugins.base import Orchestrator, Progress
from tinymlaas.signing import Signer
from tinymlaas.store import Store


def provision(orch: Orchestrator, signer: Signer, endpoint: str, *, replace: bool) -> DeviceCredentials:
    """A device's new credentials, and the key its updates will be signed with."""
    credentials = orch.provision(endpoint, replace=replace)
    credentials.signing_key = signer.public_key_b64
    return credentials


async def capabilities_now(orch: Orchestrator, endpoint: str) -> tuple[DeviceCapabilities | None, str | None]:
    """What an online device reports about itself now, or why there is nothing (a device that
    sleeps in queue mode is not kept waiting for: it is read when it next wakes)."""
    if orch.asleep(endpoint):
        return None, "the device sleeps (queue mode): it is read when it next wakes; ask again then"
    try:
        return await orch.capabilities(endpoint), None
    except TinyMLaaSError as exc:  # the record is still worth showing; say why there is no more
        return None, exc.message


async def device_detail(orch: Orchestrator, endpoint: str) -> DeviceDetail:
    """The device record and, when it is online, what it reports about itself now."""
    detail = DeviceDetail(device=orch.device(endpoint))
    if detail.device.online:
        detail.capabilities, detail.capabilities_error = await capabilities_now(orch, endpoint)
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


async def infer_or_queue(orch: Orchestrator, runner: JobRunner, store: Store, endpoint: str, *,
                         values: list[float] | None,
                         raw: list[float] | None) -> InferenceReport | QueuedRequest:
    """One inference now, or -- a device that sleeps (LwM2M queue mode) -- a job that runs it when
    the device next wakes (its step says "queued" until then, its result is the report)."""
    if not orch.asleep(endpoint):
        return await infer(orch, endpoint, values=values, raw=raw)
    job = await asyncio.to_thread(store.new_job, "infer")

    async def run(progress: Progress) -> dict[str, Any]:
        progress("queued until the device wakes (queue mode)", 0.0)
        report = await infer(orch, endpoint, values=values, raw=raw)
        return report.model_dump(mode="json")

    runner.submit_async(job, run)
    return QueuedRequest(endpoint=endpoint, job=await asyncio.to_thread(store.job, job.id),
                         detail="the device sleeps (queue mode); the inference runs when it next wakes")
