"""The new ops and dtypes on emulated boards: compiled, built by the Cortex-M builder,
booted in QEMU, every output byte equal to TFLM's (Cortex-M4 with its DSP path and
Cortex-M0 without a 64-bit multiply): 16x8 (int16 sigmoid, tanh and softmax too), SVDF,
LSTM (int8 and 16x8) and resource variables with their state carried from one inference to
the next, float32 (soft float; transposed conv and bilinear resize too), index ops, batch
matmul and L2 normalization, two inputs and outputs; the firmware describes each tensor as
the compiler declared it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _models import convert
from test_aot_16x8 import build_kind
from test_aot_lstm import keras_lstm, quantize_16x8
from test_aot_more_ops import _two_in_two_out
from test_aot_svdf import svdf_model
from test_aot_variables import streaming_model

from tinymlaas import tflite
from tinymlaas.builders.local import LocalBuilder
from tinymlaas.config import Settings
from tinymlaas.edge.tensors import laid_out, pack
from tinymlaas.edge.tflm import Tflm
from tinymlaas.emulators.qemu import QemuEmulator
from tinymlaas.services.compile import compile_model
from tinymlaas.services.mcu_device import McuDevice
from tinymlaas.targets import get_board

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(QemuEmulator.unavailable() is not None or
                       shutil.which("arm-none-eabi-gcc") is None,
                       reason="needs qemu-system-arm and arm-none-eabi-gcc"),
]


def _models(settings: Settings) -> dict[str, bytes]:
    def conv16(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
        y = L.DepthwiseConv2D(3, strides=2)(y)
        y = L.LeakyReLU(0.2)(L.Conv2DTranspose(3, 2, strides=2)(y))
        return L.Dense(5)(L.Flatten()(L.Subtract()([y, L.Conv2D(3, 1)(y)])))

    def ops8(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        y = L.Conv2DTranspose(3, 3, strides=2, padding="same")(x)
        y = L.LeakyReLU(0.3)(L.Subtract()([y, L.Conv2D(3, 1)(y)]))
        y = L.Lambda(lambda t: tf.image.resize(t, (5, 11)))(y)  # bilinear
        return L.Permute((3, 1, 2))(y)
    def floats(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        y = L.DepthwiseConv2D(3, padding="same")(L.Conv2D(4, 3, activation="relu")(x))
        y = L.Lambda(lambda t: tf.sqrt(tf.abs(t)) / (t * t + 1.0))(y)
        y = L.Lambda(lambda t: tf.nn.depth_to_space(tf.gather(t, [3, 1, 2, 0], axis=-1), 2))(y)
        return L.Lambda(lambda t: tf.concat(tf.split(t, 2, axis=2)[::-1], axis=2))(y)

    def indices(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        y = L.Conv2D(6, 1)(x)
        return L.Lambda(lambda t: tf.cast(tf.argmax(tf.maximum(t, tf.reduce_max(
            t, axis=-1, keepdims=True) * 0.5), axis=-1, output_type=tf.int32), tf.float32))(y)
    def act16(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        y = L.Dense(6, activation="sigmoid")(x)
        return L.Softmax()(L.Concatenate()([y, L.Dense(4, activation="tanh")(x)]))

    def bmm_l2(tf: Any, xs: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Lambda(lambda t: tf.math.l2_normalize(
            tf.linalg.matmul(t[0], t[1], adjoint_b=True), axis=-1))(xs)

    def tconv_f32(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        y = L.LeakyReLU(0.2)(L.Conv2DTranspose(3, 3, strides=2, padding="same")(x))
        return L.Lambda(lambda t: tf.image.resize(t, (5, 7)))(y)
    return {
        "act16_softmax16": convert(settings, "qemu_act16", {"seed": 1}, act16, (5,), mode="16x8"),
        "bmm_l2_int8": convert(settings, "qemu_bmm_l2", {"seed": 2}, bmm_l2,
                               [(2, 3, 4), (2, 5, 4)]),
        "float_tconv_resize": convert(settings, "qemu_tconv_f32", {"seed": 3}, tconv_f32,
                                      (2, 3, 2), mode="float"),
        "svdf": svdf_model(3, 1, 8, 4, 2, 5, True),
        "variables": streaming_model(settings, "int8"),
        "float": convert(settings, "qemu_float", {"seed": 1}, floats, (6, 6, 2), mode="float"),
        "int8_indices": convert(settings, "qemu_indices", {"seed": 4}, indices, (3, 4, 2)),
        "16x8": convert(settings, "qemu_16x8", {"seed": 2}, conv16, (6, 6, 2), mode="16x8"),
        "int8": convert(settings, "qemu_ops8_bilinear", {"seed": 3}, ops8, (3, 4, 2)),
        "two_io": _two_in_two_out(settings),
        "lstm_int8": keras_lstm(settings, {"units": 5, "steps": 4, "features": 3, "seq": False,
                                           "dense": True, "batch": 1, "seed": 1}, "int8"),
        "lstm_16x8": quantize_16x8(
            keras_lstm(settings, {"units": 4, "steps": 3, "features": 2, "seq": True,
                                  "dense": False, "batch": 2, "seed": 2}, "float"),
            time_major=False, clip=3.0),
        "leaky16": convert(settings, "elementwise16",
                           {"kind": "leaky", "seed": 1, "h": 2, "w": 3, "c": 2}, build_kind,
                           (2, 3, 2), mode="16x8"),
    }


def _tflm_outputs(oracle: Tflm, model: bytes, xs: list[np.ndarray]) -> bytes:
    it = oracle._it
    for k, x in enumerate(xs):
        it.set_input(x.reshape(it.get_input_details(k)["shape"]), k)
    it.invoke()
    n = len(tflite.inspect(model).outputs)
    return b"".join(np.array(it.get_output(k)).tobytes() for k in range(n))


@pytest.mark.parametrize("board_name", ["mps2-an386", "microbit"])
def test_new_ops_and_dtypes_run_bit_exact_on_the_board(settings: Settings, tmp_path: Path,
                                                        board_name: str) -> None:
    board = get_board(settings.targets_dir, board_name)
    rng = np.random.default_rng(5)
    for name, model in _models(settings).items():
        module = compile_model(model, board, tmp_path / name / "module", compiler="aot")
        LocalBuilder().build(tmp_path / name / "module", board, tmp_path / name / "fw")
        with McuDevice(board, tmp_path / name / "fw", emulator="qemu") as dev:
            specs = dev.tensors()  # the firmware describes every tensor as the compiler saw it
            for which, mine in (("inputs", module.inputs), ("outputs", module.outputs)):
                want = laid_out([{k: v for k, v in t.model_dump().items() if k != "name"}
                                 for t in mine])
                got_specs = [{k: v for k, v in d.items() if k != "name"} for d in specs[which]]
                for w in want:
                    if not w["scale"]:  # a float (or unquantized) tensor has no quantization
                        del w["scale"], w["zero_point"]
                assert got_specs == want, name
            oracle = Tflm(model)  # one interpreter: stateful models carry state on
            for _ in range(4):
                xs = []
                for t in module.inputs:
                    if t.dtype == "float32":
                        xs.append(rng.normal(0.0, 2.0, t.shape).astype(np.float32))
                        continue
                    info = np.iinfo({"int8": np.int8, "int16": np.int16}[t.dtype])
                    xs.append(rng.integers(info.min, info.max + 1, t.shape).astype(
                        {"int8": np.int8, "int16": np.int16}[t.dtype]))
                got = dev.infer(pack(specs["inputs"], xs))
                assert got.output == _tflm_outputs(oracle, model, xs), name
                assert got.instructions > 0
