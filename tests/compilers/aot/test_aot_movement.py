"""Data movement, reductions, min/max and float32 ops, int8 and float32 models converted by
TensorFlow, byte for byte against TFLM (hypothesis over shapes and seeds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _models import assert_bit_exact, convert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinymlaas import tflite
from tinymlaas.config import Settings

#: kind -> (op the converter must emit, modes the test converts it in)
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "split": ("SPLIT", ("int8", "float")),
    "split_v": ("SPLIT_V", ("int8", "float")),
    "slice": ("SLICE", ("int8", "float")),
    "gather": ("GATHER", ("int8", "float")),
    "unstack": ("UNPACK", ("int8", "float")),
    "depth_to_space": ("DEPTH_TO_SPACE", ("int8", "float")),
    "space_to_depth": ("SPACE_TO_DEPTH", ("int8", "float")),
    "resize_nearest": ("RESIZE_NEAREST_NEIGHBOR", ("int8", "float")),
    "minimum": ("MINIMUM", ("int8", "float")),
    "maximum": ("MAXIMUM", ("int8", "float")),
    "abs": ("ABS", ("int8", "float")),
    "argmax": ("ARG_MAX", ("int8", "float")),
    "argmin": ("ARG_MIN", ("int8", "float")),
    "reduce_max": ("REDUCE_MAX", ("int8", "float")),
    "sum": ("SUM", ("int8", "float")),
    "div": ("DIV", ("float",)),
    "sqrt": ("SQRT", ("float",)),
    "rsqrt": ("RSQRT", ("float",)),
    "neg": ("NEG", ("float",)),
    "add_sub_mul": ("SUB", ("float",)),
    "cast": ("CAST", ("int8", "float")),
    "int32_math": ("MUL", ("float",)),
    "avg_pool": ("AVERAGE_POOL_2D", ("float", "16x8")),
    "max_pool": ("MAX_POOL_2D", ("float", "16x8")),
    "mean": ("MEAN", ("float",)),
    "prelu": ("PRELU", ("int8", "float")),
    "bilinear": ("RESIZE_BILINEAR", ("int8",)),
    "hard_swish": ("HARD_SWISH", ("int8", "float")),
    "bilinear_corners": ("RESIZE_BILINEAR", ("int8",)),
}


def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
    L = tf.keras.layers
    k = p["kind"]
    a = L.Conv2D(4, 1)(x)  # 4 channels, a quantization of its own

    def lam(f: Any) -> Any:
        return L.Lambda(f)(a)
    if k == "split":
        return L.Concatenate()(lam(lambda t: tf.split(t, 2, axis=-1))[::-1])
    if k == "split_v":
        s = lam(lambda t: tf.split(t, [1, 3], axis=-1))
        return L.Concatenate()([s[1], s[0]])
    if k == "slice":
        return lam(lambda t: tf.slice(t, [0, 0, 1, 1], [1, -1, -1, 2]))
    if k == "gather":
        return lam(lambda t: tf.gather(t, [3, 0, 0, 2], axis=-1))
    if k == "unstack":
        return L.Concatenate()(lam(lambda t: tf.unstack(t, axis=-1))[::-1])
    if k == "depth_to_space":
        return lam(lambda t: tf.nn.depth_to_space(t, 2))
    if k == "space_to_depth":
        return lam(lambda t: tf.nn.space_to_depth(t, 2))
    if k == "resize_nearest":
        return lam(lambda t: tf.image.resize(t, (2 * p["h"], 3 * p["w"] // 2),
                                             method="nearest"))
    if k in ("minimum", "maximum"):
        b = L.Conv2D(4, 1)(x)
        return (L.Minimum if k == "minimum" else L.Maximum)()([a, b])
    if k == "abs":
        return lam(tf.abs)
    if k in ("argmax", "argmin"):
        f = tf.argmax if k == "argmax" else tf.argmin
        return lam(lambda t: f(t, axis=-1, output_type=tf.int32))
    if k == "reduce_max":
        return lam(lambda t: tf.reduce_max(t, axis=[1, 2]))
    if k == "sum":
        return lam(lambda t: tf.reduce_sum(t, axis=-1))
    if k == "div":
        return lam(lambda t: t / (tf.abs(t) + 0.5))
    if k in ("sqrt", "rsqrt"):
        f = tf.sqrt if k == "sqrt" else tf.math.rsqrt
        return lam(lambda t: f(tf.abs(t) + 0.01))
    if k == "neg":
        return lam(lambda t: -t)
    if k in ("avg_pool", "max_pool"):
        layer = L.AveragePooling2D if k == "avg_pool" else L.MaxPooling2D
        return layer(2, strides=1 + p["seed"] % 2, padding="same" if p["seed"] < 2 else "valid")(a)
    if k == "hard_swish":
        return lam(lambda t: t * tf.nn.relu6(t + 3.0) * (1.0 / 6.0))
    if k == "bilinear":  # half-pixel centres, up and down
        return lam(lambda t: tf.image.resize(t, (2 * p["h"] + 1, max(1, p["w"] - 1))))
    if k == "bilinear_corners":
        return lam(lambda t: tf.compat.v1.image.resize_bilinear(
            t, (3 * p["h"] - 1, p["w"] + 3), align_corners=True))
    if k == "prelu":
        return L.PReLU(alpha_initializer=tf.keras.initializers.RandomUniform(-0.5, 0.8),
                       shared_axes=[1, 2])(a)
    if k == "mean":
        return L.GlobalAveragePooling2D()(a)
    if k == "int32_math":  # ADD, SUB, MUL, MINIMUM, MAXIMUM of int32
        def ints(t: Any) -> Any:
            i, j = tf.cast(t * 50.0, tf.int32), tf.cast(t * -30.0 + 7.0, tf.int32)
            return tf.cast(tf.maximum(i * j - (i + j), tf.minimum(i, j)), tf.float32)
        return lam(ints)
    if k == "cast":  # float -> int32 -> float, and an index -> float
        return L.Concatenate()([
            lam(lambda t: tf.cast(tf.cast(t * 10.0, tf.int32), tf.float32)),
            lam(lambda t: tf.cast(tf.argmax(t, axis=-1, output_type=tf.int32)[..., None],
                                  tf.float32))])
    assert k == "add_sub_mul"
    b = L.Conv2D(4, 1)(x)
    return L.Multiply()([L.Subtract()([a, b]), L.Add()([a, b])])


CASES = [(k, m) for k, (_, modes) in KINDS.items() for m in modes]


@pytest.mark.parametrize(("kind", "mode"), CASES, ids=[f"{k}-{m}" for k, m in CASES])
@settings(max_examples=2, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(h=st.sampled_from([2, 4]), w=st.sampled_from([2, 4, 6]), seed=st.integers(0, 3))
def test_op(kind: str, mode: str, h: int, w: int, seed: int, settings: Settings,
            tmp_path: Path) -> None:
    p = {"kind": kind, "seed": seed, "h": h, "w": w}
    model = convert(settings, "movement", p, build, (h, w, 3), mode=mode)
    assert KINDS[kind][0] in tflite.inspect(model).ops
    assert_bit_exact(model, tmp_path / "m")
