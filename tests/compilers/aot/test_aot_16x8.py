"""16x8 quantization (int16 activations, int8 weights, 64-bit biases), as TensorFlow's
EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 converts Keras models:
every output byte equal to TFLM's, hypothesis over shapes and options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _models import assert_bit_exact, convert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_aot_ops import ACTS, conv_params

from tinymlaas import tflite
from tinymlaas.config import Settings

PROPS = settings(max_examples=5, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def _int16_io(model: bytes) -> None:
    info = tflite.inspect(model)
    assert {t.dtype for t in [*info.inputs, *info.outputs]} == {"int16"}


@PROPS
@given(p=conv_params(), depthwise=st.booleans())
def test_conv_and_depthwise_16x8(p: dict[str, Any], depthwise: bool, settings: Settings,
                                 tmp_path: Path) -> None:
    p = {**p, "dw": depthwise, "dil": 1, "act": p["act"] if p["dil"] == 1 else None}

    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        common = {"strides": (p["stride"], p["sw"]), "padding": p["padding"],
                  "activation": p["act"], "use_bias": p["bias"]}
        if p["dw"]:
            return L.DepthwiseConv2D((p["kh"], p["kw"]), **common)(x)
        return L.Conv2D(p["filters"], (p["kh"], p["kw"]), **common)(x)
    p["h"], p["w"] = max(p["h"], p["kh"]), max(p["w"], p["kw"])
    model = convert(settings, "conv16", p, build, (p["h"], p["w"], p["c"]), mode="16x8")
    _int16_io(model)
    assert ("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D") in tflite.inspect(model).ops
    assert_bit_exact(model, tmp_path / "m")


@PROPS
@given(n_in=st.integers(1, 40), units=st.integers(1, 20), act=ACTS, bias=st.booleans(),
       seed=st.integers(0, 3))
def test_fully_connected_16x8(n_in: int, units: int, act: str | None, bias: bool, seed: int,
                              settings: Settings, tmp_path: Path) -> None:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Dense(p["units"], activation=p["act"], use_bias=p["bias"])(x)
    p = {"units": units, "act": act, "bias": bias, "seed": seed, "n": n_in}
    model = convert(settings, "dense16", p, build, (n_in,), mode="16x8")
    _int16_io(model)
    assert_bit_exact(model, tmp_path / "m", samples=10)


KINDS = ["add", "sub", "mul", "add_broadcast", "concat", "pad", "slice", "leaky", "transpose",
         "conv_transpose", "pointwise"]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=2, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(h=st.integers(1, 5), w=st.integers(2, 6), c=st.integers(1, 6), seed=st.integers(0, 3))
def test_elementwise_and_data_movement_16x8(kind: str, h: int, w: int, c: int, seed: int,
                                            settings: Settings, tmp_path: Path) -> None:
    p = {"kind": kind, "seed": seed, "h": h, "w": w, "c": c}
    model = convert(settings, "elementwise16", p, build_kind, (h, w, c), mode="16x8")
    _int16_io(model)
    assert_bit_exact(model, tmp_path / "m")


def build_kind(tf: Any, x: Any, p: dict[str, Any]) -> Any:
    """A two-branch model around one op of ``p['kind']`` (shared with the int8 tests)."""
    L = tf.keras.layers
    c = p["c"]
    a = L.Conv2D(c, 1)(x)
    b = L.Conv2D(c, 1)(x)
    k = p["kind"]
    if k == "add":
        return L.Add()([a, b])
    if k == "sub":
        return L.Subtract()([a, b])
    if k == "mul":
        return L.Multiply()([a, b])
    if k == "add_broadcast":
        return L.Add()([a, L.GlobalAveragePooling2D(keepdims=True)(b)])
    if k == "concat":
        return L.Concatenate()([a, b, x])
    if k == "pad":
        return L.ZeroPadding2D(((1, 0), (2, 1)))(a)
    if k == "slice":
        return L.Lambda(lambda t: t[:, :, 1::2, :])(a)
    if k == "leaky":
        return L.LeakyReLU(0.1 + 0.1 * p["seed"])(a)
    if k == "transpose":
        return L.Permute((3, 1, 2))(a)
    if k == "conv_transpose":
        return L.Conv2DTranspose(c + 1, (3, 2), strides=(2, 1 + p["seed"] % 2),
                                 padding="same" if p["seed"] % 2 else "valid")(a)
    assert k == "pointwise"
    return L.Conv2D(c + 3, 1, activation="relu")(L.Conv2D(2 * c + 4, 1)(a))


def test_float_io_16x8(settings: Settings, tmp_path: Path) -> None:
    """float32 in and out around a 16x8 model: QUANTIZE float32->int16, DEQUANTIZE back."""
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Dense(5, activation="relu")(tf.keras.layers.Dense(7)(x))
    model = convert(settings, "float_io16", {"seed": 2}, build, (6,), float_io=True,
                    mode="16x8")
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(tflite.inspect(model).ops)
    assert_bit_exact(model, tmp_path / "m", samples=10)
