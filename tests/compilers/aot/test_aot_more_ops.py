"""int8 ops beyond the first set (SUB, LEAKY_RELU, TRANSPOSE_CONV, TRANSPOSE) and models
with several inputs and outputs, byte for byte against TFLM."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _models import assert_bit_exact, convert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_aot_16x8 import build_kind

from tinymlaas import tflite
from tinymlaas.compilers.aot import compile_source
from tinymlaas.compilers.aot.hostrun import HostModule, header_macros
from tinymlaas.config import Settings
from tinymlaas.models import Board
from tinymlaas.services.compile import compile_model


@pytest.mark.parametrize("kind", ["sub", "leaky", "transpose", "conv_transpose"])
@settings(max_examples=2, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(h=st.integers(1, 5), w=st.integers(2, 6), c=st.integers(1, 6), seed=st.integers(0, 3))
def test_new_int8_ops(kind: str, h: int, w: int, c: int, seed: int, settings: Settings,
                      tmp_path: Path) -> None:
    p = {"kind": kind, "seed": seed, "h": h, "w": w, "c": c}
    model = convert(settings, "elementwise", p, build_kind, (h, w, c))
    op = {"sub": "SUB", "leaky": "LEAKY_RELU", "transpose": "TRANSPOSE",
          "conv_transpose": "TRANSPOSE_CONV"}[kind]
    assert op in tflite.inspect(model).ops
    assert_bit_exact(model, tmp_path / "m")


@settings(max_examples=6, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(h=st.integers(2, 7), w=st.integers(2, 7), c=st.integers(1, 4), k=st.integers(1, 4),
       stride=st.integers(1, 3), padding=st.sampled_from(["same", "valid"]),
       bias=st.booleans(), act=st.sampled_from([None, "relu"]), seed=st.integers(0, 3))
def test_conv_2d_transpose(h: int, w: int, c: int, k: int, stride: int, padding: str,
                           bias: bool, act: str | None, seed: int, settings: Settings,
                           tmp_path: Path) -> None:
    p = {"h": h, "w": w, "c": c, "k": k, "stride": stride, "padding": padding, "bias": bias,
         "act": act, "seed": seed}

    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Conv2DTranspose(
            p["c"] + 1, p["k"], strides=p["stride"], padding=p["padding"], use_bias=p["bias"],
            activation=p["act"])(x)
    model = convert(settings, "conv_transpose", p, build, (h, w, c))
    assert "TRANSPOSE_CONV" in tflite.inspect(model).ops
    assert_bit_exact(model, tmp_path / "m")


def _two_in_two_out(settings: Settings, mode: str = "int8") -> bytes:
    def build(tf: Any, xs: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        a, b = xs
        d = L.Dense(6, activation="relu")(L.Concatenate()([a, b]))
        return [L.Dense(3)(d), L.Subtract()([L.Dense(4)(a), L.Dense(4)(b)])]
    return convert(settings, "two_io", {"seed": 1}, build, [(4,), (5,)], mode=mode)


@pytest.mark.parametrize("mode", ["int8", "16x8"])
def test_several_inputs_and_outputs(settings: Settings, tmp_path: Path, mode: str) -> None:
    model = _two_in_two_out(settings, mode)
    info = tflite.inspect(model)
    assert len(info.inputs) == 2 and len(info.outputs) == 2
    assert_bit_exact(model, tmp_path / "m", samples=8)


def test_packed_invoke_and_manifest_list_every_tensor(settings: Settings, m3_board: Board,
                                                      tmp_path: Path) -> None:
    """The one-buffer NAME_invoke takes the tensors one after another, at the offsets the
    header names; the manifest lists every tensor."""
    model = _two_in_two_out(settings)
    manifest = compile_model(model, m3_board, tmp_path / "mod", compiler="aot")
    assert [t.shape for t in manifest.inputs] == [[1, 4], [1, 5]]
    assert len(manifest.outputs) == 2
    m = header_macros(tmp_path / "mod" / "model.h")
    assert (m["MODEL_INPUTS"], m["MODEL_OUTPUTS"]) == ("2", "2")
    assert (m["MODEL_INPUT1_OFFSET"], m["MODEL_INPUT_BYTES"]) == ("4", "9")
    assert "int model_invoke_tensors(const void *const *inputs, void *const *outputs);" in \
        (tmp_path / "mod" / "model.h").read_text()
    rng = np.random.default_rng(2)
    a = rng.integers(-128, 128, 4).astype(np.int8)
    b = rng.integers(-128, 128, 5).astype(np.int8)
    with HostModule(tmp_path / "mod") as mod:
        # Every tensor's quantization, read from the model data (it moves with a model-only update).
        scale, zp = mod._lib.model_tensor_scale, mod._lib.model_tensor_zero_point
        scale.restype, scale.argtypes = ctypes.c_float, [ctypes.c_int32]
        zp.restype, zp.argtypes = ctypes.c_int32, [ctypes.c_int32]
        io = [*manifest.inputs, *manifest.outputs]
        assert [scale(k) for k in range(5)] == [t.scale for t in io] + [0.0]
        assert [zp(k) for k in range(-1, 5)] == [0] + [t.zero_point for t in io] + [0]
        want = np.concatenate(mod.invoke_all([a, b]))
        out = np.zeros(int(m["MODEL_OUTPUT_BYTES"]), np.int8)
        assert mod._fn(np.concatenate([a, b]).ctypes.data, out.ctypes.data) == 0
    assert out.tobytes() == want.tobytes()
    assert compile_source(model).placement.arena_bytes == manifest.memory.arena_bytes
