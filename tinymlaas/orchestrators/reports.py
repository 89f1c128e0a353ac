"""Inference reports from what devices send: raw tensor bytes plus the model's tensor specs.

Every orchestrator gets the same raw form from its devices (LwM2M's TinyML object,
an HTTP poll): every tensor packed in one byte string (:mod:`tinymlaas.edge.tensors`), so the
decoding to tensors and values lives here once.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tinymlaas.edge.tensors import unpack
from tinymlaas.errors import InvalidInput
from tinymlaas.models import InferenceReport, TensorData


def _tensor(raw: bytes | None, dtype: str) -> np.ndarray:
    data, dt = bytes(raw or b""), np.dtype(dtype)
    return np.frombuffer(data[: len(data) // dt.itemsize * dt.itemsize], dtype=dt)


def _tensors(raw: bytes | None, specs: list[dict[str, Any]]) -> list[TensorData]:
    """Each tensor of packed bytes, by the device's specs; bytes that do not match several specs
    (or one: a device that sends more than it says) are read as the first tensor, as they are."""
    arrays: list[np.ndarray] = []
    if len(specs) > 1:
        try:
            arrays = unpack(specs, bytes(raw or b""))
        except (ValueError, InvalidInput):
            arrays = []
    if not arrays:
        specs = specs[:1] or [{}]
        arrays = [_tensor(raw, specs[0].get("dtype", "int8"))]
    out = []
    for spec, arr in zip(specs, arrays, strict=True):
        values = None
        if spec.get("scale") is not None:
            values = ((arr.astype(np.float64) - spec["zero_point"]) * spec["scale"]).tolist()
        elif arr.dtype.kind == "f":
            values = arr.astype(np.float64).tolist()
        out.append(TensorData(name=str(spec.get("name", "")), raw=arr.tolist(), values=values))
    return out


def inference_report(endpoint: str, *, count: int, raw_input: bytes | None, raw_output: bytes | None,
                     tensors: dict[str, Any] | str | None, latency_us: int | None = None,
                     instructions: int | None = None, model_sha256: str | None = None,
                     escalated: bool | None = None) -> InferenceReport:
    """``tensors`` is the device's {"inputs": [...], "outputs": [...]} (or its JSON)."""
    if isinstance(tensors, str):
        tensors = json.loads(tensors) if tensors else {}
    tensors = tensors or {}
    ins = _tensors(raw_input, list(tensors.get("inputs") or []))
    outs = _tensors(raw_output, list(tensors.get("outputs") or []))
    return InferenceReport(endpoint=endpoint, count=count, input=ins[0].raw, output=outs[0].raw,
                           values=outs[0].values, inputs=ins, outputs=outs, latency_us=latency_us,
                           instructions=instructions, model_sha256=model_sha256, escalated=escalated)
