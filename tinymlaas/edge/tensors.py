"""Several tensors in one byte string: how devices carry a model's inputs and outputs.

A model with several inputs takes them packed one after another, each at the next
multiple of its element size (the layout of the ``aot`` module's one-buffer
``NAME_invoke`` and of the firmware's INFER frame); its outputs come back the same
way. One input and one output are the tensor bytes themselves. LwM2M's Input and
Output resources and the HTTP pull agent's base64 tensors carry these bytes, and
a device's tensor specs (``{"inputs": [...], "outputs": [...]}``) say where each
tensor lies (``offset``, ``bytes``), so the service can pack and unpack them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinymlaas.edge.errors import InvalidInput
from tinymlaas.edge.tflm import quantize

#: Element sizes of the dtypes a device's tensors can have.
ITEMSIZE = {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "int32": 4, "float32": 4, "int64": 8}
#: TFLite's TensorType codes (schema.fbs), as the firmware's TENSOR reply names dtypes.
TFLITE_TYPES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8"}


def elements(spec: dict[str, Any]) -> int:
    n = 1
    for d in spec["shape"]:
        n *= max(int(d), 1)
    return n


def tensor_from(spec: dict[str, Any], *, values: Sequence[float] | None,
                raw: Sequence[float] | None) -> np.ndarray:
    """One tensor's values in its dtype: ``values`` quantized with its scale (a quantized tensor),
    ``raw`` (or the values of one that is not) taken as they are, refused unless they fit the
    dtype. The caller checks the count, in its own words."""
    dtype = np.dtype(spec["dtype"])
    if values is not None and spec.get("scale") is not None:
        return quantize(np.asarray(values, dtype=np.float64).ravel(), spec["scale"], spec["zero_point"],
                        dtype)
    given = np.asarray(raw if raw is not None else values, dtype=np.float64).ravel()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if given.size and (given.min() < info.min or given.max() > info.max
                           or np.any(given != np.round(given))):
            raise InvalidInput(f"input values of {spec.get('name') or 'the input'!r} must be "
                               f"{dtype.name} integers")
    return given.astype(dtype)


def laid_out(specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``specs`` with each tensor's ``offset`` and ``bytes`` in the packed form."""
    at, out = 0, []
    for spec in specs:
        size = ITEMSIZE.get(str(spec["dtype"]))
        if size is None:
            raise InvalidInput(f"tensor {spec.get('name', '?')!r} has dtype {spec['dtype']!r}, "
                               f"which devices do not carry")
        at = -(-at // size) * size
        out.append({**spec, "offset": at, "bytes": elements(spec) * size})
        at += elements(spec) * size
    return out


def packed_bytes(specs: Sequence[dict[str, Any]]) -> int:
    """Length of the packed form (the end of the last tensor)."""
    return max((int(s["offset"]) + int(s["bytes"]) for s in laid_out(specs)), default=0)


def pack(specs: Sequence[dict[str, Any]], tensors: Sequence[np.ndarray]) -> bytes:
    """The packed form of one array per spec (each converted to its dtype, sizes checked)."""
    specs = laid_out(specs)
    if len(tensors) != len(specs):
        raise InvalidInput(f"the model takes {len(specs)} input tensors, not {len(tensors)}")
    out = bytearray(packed_bytes(specs))
    for spec, tensor in zip(specs, tensors, strict=True):
        data = np.ascontiguousarray(np.asarray(tensor, dtype=np.dtype(spec["dtype"]))).tobytes()
        if len(data) != spec["bytes"]:
            raise InvalidInput(f"tensor {spec.get('name', '?')!r} takes {elements(spec)} values, "
                               f"not {len(data) // ITEMSIZE[spec['dtype']]}")
        out[spec["offset"]:spec["offset"] + len(data)] = data
    return bytes(out)


def unpack(specs: Sequence[dict[str, Any]], raw: bytes) -> list[np.ndarray]:
    """One flat array per spec from the packed form; ValueError when ``raw`` is too short."""
    specs = laid_out(specs)
    if len(raw) < packed_bytes(specs):
        raise ValueError(f"{len(raw)} bytes do not hold the {len(specs)} tensors "
                         f"({packed_bytes(specs)} bytes)")
    return [np.frombuffer(raw, dtype=np.dtype(s["dtype"]), count=elements(s), offset=s["offset"]).copy()
            for s in specs]


def named(specs: dict[str, list[dict[str, Any]]], module: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A device's own tensor specs, named as the compiled ``module`` (its manifest) names them
    where its tensors match the device's (count and shapes); a firmware reports no names."""
    out = {which: [dict(spec) for spec in specs.get(which, [])] for which in ("inputs", "outputs")}
    for which, mine in out.items():
        known = module.get(which) or []
        if len(known) == len(mine):
            for spec, theirs in zip(mine, known, strict=True):
                if theirs.get("name") and list(theirs.get("shape", [])) == spec["shape"]:
                    spec["name"] = theirs["name"]
    return out
