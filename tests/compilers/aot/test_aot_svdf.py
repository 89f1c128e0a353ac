"""SVDF int8 with its activation state kept between invokes, against TFLM (which needs
a bias: without one its SVDF crashes, so the compiler refuses that form).

TensorFlow's converter has no Keras layer that becomes SVDF (the op comes from older
speech-model pipelines), so these models are written with the TFLite schema from
seeded numpy values, as TFLM's own SVDF tests build theirs.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from _models import assert_bit_exact
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinymlaas.compilers.aot import compile_source
from tinymlaas.compilers.aot.hostrun import HostModule
from tinymlaas.edge.tflm import Tflm


def _tensor(m: schema.ModelT, sg: schema.SubGraphT, shape: list[int], ttype: int,
            scale: float | None = None, zp: int = 0, data: np.ndarray | None = None,
            variable: bool = False) -> int:
    t = schema.TensorT()
    t.shape, t.type, t.isVariable = shape, ttype, variable
    if scale is not None:
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [zp]
    buf = schema.BufferT()
    if data is not None:
        buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
    m.buffers.append(buf)
    t.buffer = len(m.buffers) - 1
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def svdf_model(seed: int, batch: int, n_input: int, units: int, rank: int, memory: int,
               state16: bool) -> bytes:
    rng = np.random.default_rng(seed)
    tt = schema.TensorType
    m = schema.ModelT()
    m.version, m.buffers, m.subgraphs = 3, [schema.BufferT()], []
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.SVDF
    m.operatorCodes = [oc]
    sg = schema.SubGraphT()
    sg.tensors, sg.operators = [], []
    filters = units * rank
    st_type, st_np = (tt.INT16, np.int16) if state16 else (tt.INT8, np.int8)
    st_scale = float(rng.uniform(0.005, 0.05))
    x = _tensor(m, sg, [batch, n_input], tt.INT8, float(rng.uniform(0.01, 0.1)),
                int(rng.integers(-20, 20)))
    wf = _tensor(m, sg, [filters, n_input], tt.INT8, float(rng.uniform(0.002, 0.02)), 0,
                 rng.integers(-127, 128, (filters, n_input)).astype(np.int8))
    info = np.iinfo(st_np)
    wt_scale = float(rng.uniform(0.001, 0.01))
    wt = _tensor(m, sg, [filters, memory], st_type, wt_scale, 0,
                 rng.integers(info.min // 4, info.max // 4, (filters, memory)).astype(st_np))
    b = _tensor(m, sg, [units], tt.INT32, st_scale * wt_scale, 0,
                rng.integers(-5000, 5000, units).astype(np.int32))
    state = _tensor(m, sg, [batch, memory * filters], st_type, st_scale,
                    0 if state16 else int(rng.integers(-10, 10)), variable=True)
    y = _tensor(m, sg, [batch, units], tt.INT8, float(rng.uniform(0.05, 0.5)),
                int(rng.integers(-20, 20)))
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [x, wf, wt, b, state], [y]
    op.builtinOptionsType = schema.BuiltinOptions.SVDFOptions
    op.builtinOptions = schema.SVDFOptionsT()
    op.builtinOptions.rank = rank
    sg.operators.append(op)
    sg.inputs, sg.outputs = [x], [y]
    m.subgraphs.append(sg)
    fb = flatbuffers.Builder(0)
    fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
    return bytes(fb.Output())


@settings(max_examples=10, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1000), batch=st.integers(1, 2), n_input=st.integers(1, 12),
       units=st.integers(1, 5), rank=st.integers(1, 2), memory=st.integers(1, 8),
       state16=st.booleans())
def test_svdf_matches_tflm_over_invokes(seed: int, batch: int, n_input: int, units: int,
                                        rank: int, memory: int, state16: bool,
                                        tmp_path: Path) -> None:
    """Several invokes in a row: the state each leaves behind feeds the next one."""
    model = svdf_model(seed, batch, n_input, units, rank, memory, state16)
    assert_bit_exact(model, tmp_path / "m", samples=2 * memory + 3)


def test_reset_restores_the_first_answer(tmp_path: Path) -> None:
    model = svdf_model(7, 1, 6, 3, 2, 4, True)
    out = compile_source(model)
    assert "int model_invoke(" in out.source.c and "void model_reset(void);" in out.source.h
    (tmp_path / "model.c").write_text(out.source.c)
    (tmp_path / "model.h").write_text(out.source.h)
    x = np.arange(-3, 3, dtype=np.int8) * 20
    with HostModule(tmp_path) as mod:
        first = [mod.invoke(x).tobytes() for _ in range(3)]
        assert first[0] != first[2]  # the state moved on
        mod.reset()
        assert [mod.invoke(x).tobytes() for _ in range(3)] == first
    tflm = Tflm(model)
    assert [tflm.invoke(x[None]).tobytes() for _ in range(3)] == first


@pytest.mark.parametrize("state16", [False, True])
def test_state_is_planned_into_the_arena(state16: bool) -> None:
    out = compile_source(svdf_model(1, 2, 5, 4, 2, 6, state16))
    state = 2 * 6 * 8 * (2 if state16 else 1)
    assert out.placement.arena_bytes >= state
    assert f"#define MODEL_STATE_BYTES {state}" in out.source.h
