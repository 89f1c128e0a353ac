"""Property tests: random TensorFlow-converted models, every output byte equal to TFLM's.

Hypothesis draws layer parameters (strides, SAME/VALID, dilation, fused
activations, odd shapes, per-channel weights come from the converter);
derandomized, so every run checks the same examples and the converted
models are reused from the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _models import assert_bit_exact, convert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinymlaas import tflite
from tinymlaas.config import Settings

PROPS = settings(max_examples=8, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])
ACTS = st.sampled_from([None, "relu", "relu6"])


def _ops(model: bytes) -> list[str]:
    return tflite.inspect(model).ops


@st.composite
def conv_params(draw: st.DrawFn) -> dict[str, Any]:
    dil = draw(st.sampled_from([1, 1, 2]))
    stride = 1 if dil > 1 else draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["same", "valid"]))
    return {
        "h": draw(st.integers(3, 9)), "w": draw(st.integers(3, 9)), "c": draw(st.integers(1, 5)),
        "filters": draw(st.integers(1, 7)), "kh": draw(st.integers(1, 3)),
        "kw": draw(st.integers(1, 3)), "stride": stride, "sw": 1 if dil > 1 else draw(
            st.integers(1, 2)), "dil": dil, "padding": padding,
        # A dilated conv is checked against TFLite's reference kernels (see _models),
        # whose standalone int8 RELU6 requantizes where TFLM's clamps raw values.
        "act": draw(st.sampled_from([None, "relu"]) if dil > 1 else ACTS),
        "bias": draw(st.booleans()), "seed": draw(st.integers(0, 3)),
    }


@PROPS
@given(p=conv_params())
def test_conv_2d(p: dict[str, Any], settings: Settings, tmp_path: Path) -> None:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Conv2D(
            p["filters"], (p["kh"], p["kw"]), strides=(p["stride"], p["sw"]),
            padding=p["padding"], dilation_rate=p["dil"], activation=p["act"],
            use_bias=p["bias"])(x)
    p["h"] = max(p["h"], (p["kh"] - 1) * p["dil"] + 1)
    p["w"] = max(p["w"], (p["kw"] - 1) * p["dil"] + 1)
    model = convert(settings, "conv", p, build, (p["h"], p["w"], p["c"]))
    assert "CONV_2D" in _ops(model)
    assert_bit_exact(model, tmp_path / "m")


@PROPS
@given(p=conv_params(), mult=st.sampled_from([1, 2]))
def test_depthwise_conv_2d(p: dict[str, Any], mult: int, settings: Settings,
                           tmp_path: Path) -> None:
    p = {**p, "mult": mult}

    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.DepthwiseConv2D(
            (p["kh"], p["kw"]), strides=(p["stride"], p["sw"]), padding=p["padding"],
            depth_multiplier=p["mult"], dilation_rate=p["dil"], activation=p["act"],
            use_bias=p["bias"])(x)
    p["h"] = max(p["h"], (p["kh"] - 1) * p["dil"] + 1)
    p["w"] = max(p["w"], (p["kw"] - 1) * p["dil"] + 1)
    model = convert(settings, "dwconv", p, build, (p["h"], p["w"], p["c"]))
    assert "DEPTHWISE_CONV_2D" in _ops(model)
    assert_bit_exact(model, tmp_path / "m")


@PROPS
@given(h=st.integers(2, 9), w=st.integers(2, 9), c=st.integers(1, 4),
       size=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.sampled_from(["same", "valid"]), kind=st.sampled_from(["avg", "max"]))
def test_pooling(h: int, w: int, c: int, size: int, stride: int, padding: str, kind: str,
                 settings: Settings, tmp_path: Path) -> None:
    p = {"size": min(size, h, w), "stride": stride, "padding": padding, "kind": kind}

    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        layer = (tf.keras.layers.AveragePooling2D if p["kind"] == "avg"
                 else tf.keras.layers.MaxPooling2D)
        y = tf.keras.layers.Conv2D(c, 1)(x)  # gives the pool an int8 input with its own scale
        return layer(p["size"], strides=p["stride"], padding=p["padding"])(y)
    model = convert(settings, "pool", {**p, "h": h, "w": w, "c": c}, build, (h, w, c))
    assert_bit_exact(model, tmp_path / "m")


@PROPS
@given(n_in=st.integers(1, 40), units=st.integers(1, 20), act=ACTS, bias=st.booleans(),
       seed=st.integers(0, 3))
def test_fully_connected(n_in: int, units: int, act: str | None, bias: bool, seed: int,
                         settings: Settings, tmp_path: Path) -> None:
    p = {"units": units, "act": act, "bias": bias, "seed": seed}

    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Dense(p["units"], activation=p["act"], use_bias=p["bias"])(x)
    model = convert(settings, "dense", {**p, "n": n_in}, build, (n_in,))
    assert _ops(model) == ["FULLY_CONNECTED"]
    assert_bit_exact(model, tmp_path / "m", samples=12)


ELEMENTWISE = ["sigmoid", "tanh", "relu_after_mean", "relu6_after_mean", "softmax", "add", "mul",
               "add_broadcast", "mul_const", "concat", "mean", "mean_keep", "pad", "slice",
               "flatten_dense"]


@pytest.mark.parametrize("kind", ELEMENTWISE)
@settings(max_examples=2, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(h=st.integers(1, 5), w=st.integers(2, 6), c=st.integers(1, 6), seed=st.integers(0, 3))
def test_elementwise_and_data_movement(kind: str, h: int, w: int, c: int, seed: int,
                                       settings: Settings, tmp_path: Path) -> None:
    p = {"kind": kind, "seed": seed}

    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        a = L.Conv2D(c, 1)(x)
        b = L.Conv2D(c, 1)(x)
        k = p["kind"]
        if k in ("sigmoid", "tanh", "softmax"):
            return L.Activation(k)(a)
        if k == "relu_after_mean":  # MEAN has no fused activation: RELU stays an op
            return L.ReLU()(L.GlobalAveragePooling2D()(a))
        if k == "relu6_after_mean":
            return L.ReLU(6.0)(L.GlobalAveragePooling2D()(a))
        if k == "add":
            return L.Add()([a, b])
        if k == "mul":
            return L.Multiply()([a, b])
        if k == "add_broadcast":
            return L.Add()([a, L.GlobalAveragePooling2D(keepdims=True)(b)])
        if k == "mul_const":
            return L.Lambda(lambda t: t * tf.constant([0.5 + i for i in range(c)]))(a)
        if k == "concat":
            return L.Concatenate()([a, b, x])
        if k == "mean":
            return L.GlobalAveragePooling2D()(a)
        if k == "mean_keep":
            return L.GlobalAveragePooling2D(keepdims=True)(a)
        if k == "pad":
            return L.ZeroPadding2D(((1, 0), (2, 1)))(a)
        if k == "slice":
            return L.Lambda(lambda t: t[:, :, 1::2, :])(a)
        return L.Dense(3)(L.Flatten()(a))
    model = convert(settings, "elementwise", {**p, "h": h, "w": w, "c": c}, build, (h, w, c))
    assert_bit_exact(model, tmp_path / "m")


def test_float_io_quantize_and_dequantize(settings: Settings, tmp_path: Path) -> None:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Dense(4, activation="relu")(x)
    model = convert(settings, "float_io", {"seed": 1}, build, (6,), float_io=True)
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(_ops(model))
    assert_bit_exact(model, tmp_path / "m", samples=10)
