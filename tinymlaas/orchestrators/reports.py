"""Inference reports from what devices send: raw tensor bytes plus the model's tensor specs.

Every orchestrator gets the same raw form from its devices (LwM2M's TinyML object,
an HTTP poll), so the decoding to values lives here once.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tinymlaas.models import InferenceReport


def _tensor(raw: bytes | None, dtype: str) -> np.ndarray:
    data, dt = bytes(raw or b""), np.dtype(dtype)
    return np.frombuffer(data[: len(data) // dt.itemsize * dt.itemsize], dtype=dt)


def inference_report(endpoint: str, *, count: int, raw_input: bytes | None, raw_output: bytes | None,
                     tensors: dict[str, Any] | str | None, latency_us: int | None = None,
                     instructions: int | None = None, model_sha256: str | None = None,
                     escalated: bool | None = None) -> InferenceReport:
    """``tensors`` is the device's {"inputs": [...], "outputs": [...]} (or its JSON)."""
    if isinstance(tensors, str):
        tensors = json.loads(tensors) if tensors else {}
    tensors = tensors or {}
    i = (tensors.get("inputs") or [{}])[0]
    o = (tensors.get("outputs") or [{}])[0]
    x = _tensor(raw_input, i.get("dtype", "int8"))
    y = _tensor(raw_output, o.get("dtype", "int8"))
    values = None
    if o.get("scale") is not None:
        values = ((y.astype(np.float64) - o["zero_point"]) * o["scale"]).tolist()
    elif y.dtype.kind == "f":
        values = y.astype(np.float64).tolist()
    return InferenceReport(endpoint=endpoint, count=count, input=x.tolist(), output=y.tolist(),
                           values=values, latency_us=latency_us, instructions=instructions,
                           model_sha256=model_sha256, escalated=escalated)
