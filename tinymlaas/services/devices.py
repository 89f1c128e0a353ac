"""Device use cases over whichever orchestrator runs: what a device is, one inference."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from tinymlaas.edge.tensors import elements, pack, tensor_from
from tinymlaas.errors import InvalidInput, TinyMLaaSError
from tinymlaas.jobs import JobRunner
from tinymlaas.models import (
    DeviceCapabilities,
    DeviceCredentials,
    DeviceDetail,
    InferenceReport,
    QueuedRequest,
    TensorInput,
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


def _one_tensor(endpoint: str, spec: dict[str, Any], *, values: list[float] | None,
                raw: list[float] | None) -> np.ndarray:
    """One input tensor: ``values`` quantized with its scale, ``raw`` taken as they are."""
    tensor = tensor_from(spec, values=values, raw=raw)
    if tensor.size != elements(spec):
        raise InvalidInput(f"input {spec.get('name') or 0!r} of the model on '{endpoint}' takes "
                           f"{elements(spec)} values, not {tensor.size}")
    return tensor


def input_tensor(caps: DeviceCapabilities, *, values: list[float] | None, raw: list[float] | None,
                 inputs: list[TensorInput] | None = None) -> bytes:
    """The packed input tensors for the model a device runs: ``values`` are quantized with each
    tensor's scale, ``raw`` are taken as they are; each must fill its tensor exactly. ``inputs``
    gives every input of a model with several (in the model's order, or by name); ``values`` or
    ``raw`` alone is for a model with one."""
    specs: list[dict[str, Any]] = (caps.tensors or {}).get("inputs") or []
    if not specs:
        raise InvalidInput(f"device '{caps.endpoint}' does not describe its input tensor")
    names = ", ".join(repr(s.get("name", "")) for s in specs)
    if inputs is None:
        if len(specs) != 1:
            raise InvalidInput(f"the model on '{caps.endpoint}' takes {len(specs)} input tensors "
                               f"({names}): give each in 'inputs'")
        inputs = [TensorInput(values=values, input=raw)]
    if len(inputs) != len(specs):
        raise InvalidInput(f"the model on '{caps.endpoint}' takes {len(specs)} input tensors ({names}), "
                           f"not {len(inputs)}")
    if any(t.name is not None for t in inputs):
        by_name = {t.name: t for t in inputs}
        unknown = [t.name for t in inputs if t.name not in {s.get("name") for s in specs}]
        if unknown or len(by_name) != len(inputs):
            raise InvalidInput(f"'inputs' must name each input tensor of the model on "
                               f"'{caps.endpoint}' once ({names}); unknown or repeated: "
                               f"{', '.join(repr(n) for n in unknown) or 'a repeated name'}")
        inputs = [by_name[s.get("name")] for s in specs]
    tensors = [_one_tensor(caps.endpoint, spec, values=t.values, raw=t.input)
               for spec, t in zip(specs, inputs, strict=True)]
    return pack(specs, tensors)


async def infer(orch: Orchestrator, endpoint: str, *, values: list[float] | None,
                raw: list[float] | None, inputs: list[TensorInput] | None = None) -> InferenceReport:
    """One inference on the device, through the orchestration protocol."""
    caps = await orch.capabilities(endpoint)
    return await orch.infer(endpoint, input_tensor(caps, values=values, raw=raw, inputs=inputs))


async def infer_or_queue(orch: Orchestrator, runner: JobRunner, store: Store, endpoint: str, *,
                         values: list[float] | None, raw: list[float] | None,
                         inputs: list[TensorInput] | None = None) -> InferenceReport | QueuedRequest:
    """One inference now, or -- a device that sleeps (LwM2M queue mode) -- a job that runs it when
    the device next wakes (its step says "queued" until then, its result is the report)."""
    if not orch.asleep(endpoint):
        return await infer(orch, endpoint, values=values, raw=raw, inputs=inputs)
    job = await asyncio.to_thread(store.new_job, "infer")

    async def run(progress: Progress) -> dict[str, Any]:
        progress("queued until the device wakes (queue mode)", 0.0)
        report = await infer(orch, endpoint, values=values, raw=raw, inputs=inputs)
        return report.model_dump(mode="json")

    runner.submit_async(job, run)
    return QueuedRequest(endpoint=endpoint, job=await asyncio.to_thread(store.job, job.id),
                         detail="the device sleeps (queue mode); the inference runs when it next wakes")
