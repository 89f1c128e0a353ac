"""SOFTMAX int16 and float32, LOGISTIC/TANH float32, L2_NORMALIZATION, BATCH_MATMUL and the
float32 TRANSPOSE_CONV, RESIZE_BILINEAR, LEAKY_RELU and LSTM, on models TensorFlow
converts, against TFLM (hypothesis over shapes and options)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _models import assert_bit_exact, convert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_aot_act16 import assert_every_int16, unary_model
from test_aot_lstm import keras_lstm
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinymlaas import tflite
from tinymlaas.config import Settings

PROPS = settings(max_examples=4, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def test_softmax_int16_every_input(tmp_path: Path) -> None:
    """Rows of one value against a shifted copy: every difference TFLM's tables see."""
    for scale in (2.0 ** -12, 3e-4):
        assert_every_int16(unary_model("SOFTMAX", scale, [32768, 2], out_scale=1 / 32768),
                           tmp_path / f"m{scale}")


@PROPS
@given(rows=st.integers(1, 4), depth=st.integers(1, 40), beta=st.sampled_from([1.0, 0.5]),
       seed=st.integers(0, 3))
def test_softmax_16x8_and_float(rows: int, depth: int, beta: float, seed: int,
                                settings: Settings, tmp_path: Path) -> None:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        return L.Softmax()(L.Lambda(lambda t: t * (2.0 * p["beta"]))(x))
    p = {"rows": rows, "depth": depth, "beta": beta, "seed": seed}
    for mode in ("16x8", "float"):
        model = convert(settings, "softmax_x", p, build, (rows, depth), mode=mode)
        assert "SOFTMAX" in tflite.inspect(model).ops
        assert_bit_exact(model, tmp_path / mode, samples=5)


@pytest.mark.parametrize("kind", ["sigmoid", "tanh", "leaky"])
@PROPS
@given(n=st.integers(1, 30), seed=st.integers(0, 3))
def test_float_elementwise(kind: str, n: int, seed: int, settings: Settings,
                           tmp_path: Path) -> None:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        y = L.Lambda(lambda t: t * 2.5 - 0.5)(x)
        if p["kind"] == "leaky":
            return L.LeakyReLU(0.15)(y)
        return L.Activation(p["kind"])(y)
    p = {"kind": kind, "n": n, "seed": seed}
    model = convert(settings, "float_elementwise", p, build, (3, n), mode="float")
    assert_bit_exact(model, tmp_path / "m", samples=5)


def test_l2_normalization_float(tmp_path: Path) -> None:
    """TensorFlow converts a float l2_normalize into its parts; TFLM's op, built directly."""
    model = unary_model("L2_NORMALIZATION", None, [5, 7], out_scale=None,
                        ttype=schema.TensorType.FLOAT32)
    assert_bit_exact(model, tmp_path / "m", samples=6)


@PROPS
@given(n=st.integers(1, 40), rows=st.integers(1, 3), seed=st.integers(0, 3))
def test_l2_normalization_int8(n: int, rows: int, seed: int, settings: Settings,
                               tmp_path: Path) -> None:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1))(x)
    model = convert(settings, "l2norm8", {"n": n, "rows": rows, "seed": seed}, build,
                    (rows, n))
    assert "L2_NORMALIZATION" in tflite.inspect(model).ops
    assert_bit_exact(model, tmp_path / "m", samples=6)


@PROPS
@given(m=st.integers(1, 5), k=st.integers(1, 6), n=st.integers(1, 5), batch=st.integers(1, 3),
       adj=st.sampled_from([(False, False), (True, False), (False, True)]),
       broadcast=st.booleans(), seed=st.integers(0, 3))
def test_batch_matmul(m: int, k: int, n: int, batch: int, adj: tuple[bool, bool],
                      broadcast: bool, seed: int, settings: Settings, tmp_path: Path) -> None:
    """Two activations multiplied (int8, 16x8 and float32), adjoints and a broadcast batch."""
    def build(tf: Any, xs: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Lambda(lambda t: tf.linalg.matmul(
            t[0], t[1], adjoint_a=p["adj"][0], adjoint_b=p["adj"][1]))(xs)
    p = {"m": m, "k": k, "n": n, "batch": batch, "adj": list(adj), "bc": broadcast,
         "seed": seed}
    shapes = [(batch, *((k, m) if adj[0] else (m, k))),
              (1 if broadcast else batch, *((n, k) if adj[1] else (k, n)))]
    for mode in ("int8", "16x8", "float"):
        model = convert(settings, "bmm", p, build, shapes, mode=mode)
        assert "BATCH_MATMUL" in tflite.inspect(model).ops, mode
        assert_bit_exact(model, tmp_path / mode, samples=4)


@PROPS
@given(h=st.integers(1, 4), w=st.integers(1, 5), c=st.integers(1, 4),
       strides=st.sampled_from([(1, 1), (2, 2), (2, 1)]), same=st.booleans(),
       seed=st.integers(0, 3))
def test_float_transpose_conv_and_resize(h: int, w: int, c: int, strides: tuple[int, int],
                                         same: bool, seed: int, settings: Settings,
                                         tmp_path: Path) -> None:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        y = L.Conv2DTranspose(p["c"] + 1, (3, 2), strides=tuple(p["s"]),
                              padding="same" if p["same"] else "valid", activation="relu")(x)
        half = p["seed"] % 2 == 0
        return L.Lambda(lambda t: tf.compat.v1.image.resize_bilinear(
            t, (2 * p["h"] + 1, p["w"] + 2), align_corners=not half,
            half_pixel_centers=half))(y)
    p = {"h": h, "w": w, "c": c, "s": list(strides), "same": same, "seed": seed}
    model = convert(settings, "tconv_resize_f32", p, build, (h, w, c), mode="float")
    assert {"TRANSPOSE_CONV", "RESIZE_BILINEAR"} <= set(tflite.inspect(model).ops)
    assert_bit_exact(model, tmp_path / "m", samples=4)


@PROPS
@given(units=st.integers(1, 6), steps=st.integers(1, 5), seed=st.integers(0, 3))
def test_float_lstm(units: int, steps: int, seed: int, settings: Settings,
                    tmp_path: Path) -> None:
    p = {"units": units, "steps": steps, "features": 3, "seq": True, "dense": True,
         "batch": 1, "seed": seed}
    model = keras_lstm(settings, p, "float")
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in tflite.inspect(model).ops
    assert_bit_exact(model, tmp_path / "m", samples=6)
