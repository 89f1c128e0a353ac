"""Reading .tflite flatbuffers with TFLM's generated schema module.

No hand-written flatbuffer decoding: the object API of the schema that ships
with the ``tflite_micro`` wheel does the parsing; this module turns its
failures into one clear error and its enums into names.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinymlaas.errors import InvalidInput
from tinymlaas.models import ModelInfo, TensorSpec

FILE_IDENTIFIER = b"TFL3"


@cache
def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def op_name(code: int) -> str:
    return _enum_names(schema.BuiltinOperator).get(code, f"UNKNOWN_{code}")


def dtype_name(code: int) -> str:
    return _enum_names(schema.TensorType).get(code, f"UNKNOWN_{code}").lower()


NUMPY_DTYPES: dict[str, Any] = {
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "float32": np.float32,
    "bool": np.bool_,
}


def parse(data: bytes) -> Any:
    """The model as the schema's object tree (``ModelT``); refuses non-TFLite bytes."""
    if not data:
        raise InvalidInput("model file is empty")
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise InvalidInput(
            "not a TFLite model: the file lacks the 'TFL3' flatbuffer identifier at byte 4"
        )
    try:
        model = _tree(data)
    except Exception as exc:  # the flatbuffers runtime raises whatever a bad offset gives
        raise InvalidInput(f"corrupt TFLite model: {type(exc).__name__}: {exc}") from exc
    if not model.subgraphs:
        raise InvalidInput("corrupt TFLite model: it has no subgraph")
    return model


def _tree(data: bytes) -> Any:
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


#: Bytes at a model's end that nothing in it reads (a string's NUL, alignment, fields newer
#: than this schema): up to this many are not told apart from trailing data.
END_SLACK = 16


def check_end(data: bytes, model: Any) -> None:
    """Refuse bytes after the model's end: a flatbuffer does not say how long it is, so a model
    with something appended (another file, a truncated upload glued to a whole one) would be
    stored, hashed and shipped as it is. The end is the last byte the model reads (the
    flatbuffer, or the data of buffers stored after it, as models over 2 GB have)."""
    outside = [int(b.offset) + int(b.size) for b in model.buffers or [] if b.offset > 1]
    if outside:
        end = max(outside)
    elif len(data) <= END_SLACK or not _reads_within(data, model, len(data) - END_SLACK):
        return
    else:  # the smallest prefix that reads as the same model
        lo, hi = 8, len(data) - END_SLACK
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _reads_within(data, model, mid) else (mid + 1, hi)
        end = lo
    if len(data) > end + END_SLACK:
        raise InvalidInput(f"the model file has {len(data) - end:,} bytes after the end of the TFLite model "
                           f"(byte {end:,} of {len(data):,}): upload the .tflite file as the converter "
                           "wrote it, without trailing data", model_end=end, file_bytes=len(data))


def _reads_within(data: bytes, model: Any, length: int) -> bool:
    """Whether the first ``length`` bytes alone read as ``model``."""
    try:
        return _same(_tree(data[:length]), model)
    except Exception:  # it reads past the cut: the model needs those bytes
        return False


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if hasattr(a, "__dict__") and type(a) is type(b):
        va, vb = vars(a), vars(b)
        return va.keys() == vb.keys() and all(_same(va[k], vb[k]) for k in va)
    return bool(a == b)


def opcode_of(model: Any, op: Any) -> str:
    oc = model.operatorCodes[op.opcodeIndex]
    return op_name(max(oc.builtinCode, oc.deprecatedBuiltinCode))


def tensor_spec(tensor: Any) -> TensorSpec:
    q = tensor.quantization
    scale = zp = None
    if q is not None and q.scale is not None and len(q.scale) == 1:
        scale, zp = float(q.scale[0]), int(q.zeroPoint[0])
    name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name or "")
    shape = [int(d) for d in (tensor.shapeSignature if tensor.shapeSignature is not None
                              else tensor.shape if tensor.shape is not None else [])]
    # A dynamic batch (-1) is one sample on a device.
    shape = [1 if d < 0 else d for d in shape]
    return TensorSpec(name=name, shape=shape, dtype=dtype_name(tensor.type), scale=scale,
                      zero_point=zp)


def inspect(data: bytes) -> ModelInfo:
    """Metadata of a model: hash, ops, input and output tensors (of a whole model, and no more)."""
    model = parse(data)
    check_end(data, model)
    try:
        sg = model.subgraphs[0]
        ops: list[str] = []
        for op in sg.operators or []:
            name = opcode_of(model, op)
            if name not in ops:
                ops.append(name)
        desc = model.description.decode(errors="replace") if model.description else ""
        return ModelInfo(
            sha256=hashlib.sha256(data).hexdigest(),
            bytes=len(data),
            ops=ops,
            operators=len(sg.operators or []),
            inputs=[tensor_spec(sg.tensors[i]) for i in sg.inputs],
            outputs=[tensor_spec(sg.tensors[i]) for i in sg.outputs],
            description=desc,
        )
    except (IndexError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"corrupt TFLite model: {type(exc).__name__}: {exc}") from exc
