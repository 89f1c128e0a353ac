"""int16 LOGISTIC and TANH (TFLM's interpolated sigmoid table): every one of the 65,536
inputs against TFLM, for power-of-two input scales (TFLM's exact path) and others, and in
a model TensorFlow converts with 16x8 quantization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import pytest
from _models import assert_bit_exact, convert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_aot_svdf import _tensor
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinymlaas import tflite
from tinymlaas.compilers.aot import compile_source
from tinymlaas.compilers.aot.hostrun import HostModule
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm


def unary_model(kind: str, in_scale: float | None, shape: list[int],
                out_scale: float | None = 2.0 ** -15,
                ttype: int = schema.TensorType.INT16) -> bytes:
    """One builtin op from one tensor to one of the same shape."""
    m = schema.ModelT()
    m.version, m.buffers, m.subgraphs = 3, [schema.BufferT()], []
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, kind)
    m.operatorCodes = [oc]
    sg = schema.SubGraphT()
    sg.tensors, sg.operators = [], []
    x = _tensor(m, sg, shape, ttype, in_scale, 0)
    y = _tensor(m, sg, shape, ttype, out_scale, 0)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [x], [y]
    if kind == "SOFTMAX":
        op.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
        op.builtinOptions = schema.SoftmaxOptionsT()
        op.builtinOptions.beta = 1.0
    sg.operators.append(op)
    sg.inputs, sg.outputs = [x], [y]
    m.subgraphs.append(sg)
    fb = flatbuffers.Builder(0)
    fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
    return bytes(fb.Output())


def assert_every_int16(model: bytes, tmp: Path) -> None:
    out = compile_source(model)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "model.c").write_text(out.source.c)
    (tmp / "model.h").write_text(out.source.h)
    x = np.arange(-32768, 32768, dtype=np.int16)
    with HostModule(tmp) as mod:
        ours = mod.invoke(x)
    theirs = Tflm(model, arena_bytes=1 << 20).invoke(x).ravel()
    bad = np.flatnonzero(ours != theirs)
    assert not bad.size, f"inputs {x[bad[:8]]}: ours {ours[bad[:8]]} TFLM {theirs[bad[:8]]}"


@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
@settings(max_examples=6, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scale=st.one_of(st.sampled_from([2.0 ** -12, 2.0 ** -11, 2.0 ** -13, 2.0 ** -15]),
                       st.floats(2e-5, 2e-3)))
def test_every_int16_input(kind: str, scale: float, tmp_path: Path) -> None:
    assert_every_int16(unary_model(kind, scale, [65536]), tmp_path / "m")


def test_converted_16x8_sigmoid_and_tanh(settings: Settings, tmp_path: Path) -> None:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        y = L.Dense(6, activation="sigmoid")(x)
        return L.Concatenate()([y, L.Dense(4, activation="tanh")(x)])
    model = convert(settings, "act16", {"seed": 3}, build, (5,), mode="16x8")
    assert {"LOGISTIC", "TANH"} <= set(tflite.inspect(model).ops)
    assert_bit_exact(model, tmp_path / "m", samples=12)
