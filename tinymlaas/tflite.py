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
        root = schema.Model.GetRootAsModel(data, 0)
        model = schema.ModelT.InitFromObj(root)
    except Exception as exc:  # the flatbuffers runtime raises whatever a bad offset gives
        raise InvalidInput(f"corrupt TFLite model: {type(exc).__name__}: {exc}") from exc
    if not model.subgraphs:
        raise InvalidInput("corrupt TFLite model: it has no subgraph")
    return model


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
    """Metadata of a model: hash, ops, input and output tensors."""
    model = parse(data)
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
