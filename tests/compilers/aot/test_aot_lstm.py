"""UNIDIRECTIONAL_SEQUENCE_LSTM from Keras LSTM layers, against TFLM over sequences of
invokes (hidden and cell state carry from one invoke to the next, as in TFLM).

TensorFlow's converter fuses a Keras 2 LSTM (``tf_keras``; Keras 3 layers become WHILE
loops) into the op. It quantizes it to int8 itself, but refuses 16x8 ("Quantization to
16x8-bit not yet supported for op: UNIDIRECTIONAL_SEQUENCE_LSTM"), so the 16x8 models
are the converter's float LSTM quantized here by TFLite's 16x8 rules (int16 activations
with zero point 0, symmetric int8 weights, int64 biases, a power-of-two cell scale), as
TFLM's own LSTM tests build theirs.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
from _models import assert_bit_exact
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinymlaas import tflite
from tinymlaas.config import Settings

PROPS = settings(max_examples=6, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def keras_lstm(settings: Settings, p: dict[str, Any], mode: str) -> bytes:
    """A Keras LSTM (then an optional Dense) converted by TensorFlow, cached by parameters.

    p: units, steps, features, seq (return sequences), dense, batch, seed.
    mode: "int8" (the converter's full-integer quantization) or "float".
    """
    key = json.dumps({"p": p, "mode": mode, "tf": version("tensorflow-cpu")}, sort_keys=True)
    path = (settings.data_dir / "cache" / "aot-ops" /
            f"lstm-{hashlib.sha256(key.encode()).hexdigest()[:16]}.tflite")
    if path.exists():
        return path.read_bytes()
    from tinymlaas.zoo._convert import seed_everything

    tf = seed_everything(int(p["seed"]))
    import tf_keras

    tf_keras.utils.set_random_seed(int(p["seed"]))
    x = tf_keras.Input(shape=(p["steps"], p["features"]), batch_size=p["batch"], name="in0")
    y = tf_keras.layers.LSTM(p["units"], return_sequences=p["seq"])(x)
    if p["dense"]:
        y = tf_keras.layers.Dense(3)(y)
    model = tf_keras.Model(x, y)
    rng = np.random.default_rng(int(p["seed"]))
    reps = rng.normal(0.0, 1.0, (48, p["batch"], p["steps"], p["features"])).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([r] for r in reps)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    data = bytes(conv.convert())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def quantize_16x8(float_model: bytes, *, time_major: bool, clip: float) -> bytes:
    """The float LSTM with TFLite's 16x8 quantization (input range ±4, hidden ±1)."""
    m = schema.ModelT.InitFromPackedBuf(float_model, 0)
    sg = m.subgraphs[0]
    (op,) = [o for o in sg.operators
             if m.operatorCodes[o.opcodeIndex].builtinCode ==
             schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM]
    tt = schema.TensorType

    done: set[int] = set()

    def quantize(index: int, ttype: int, scale: float) -> None:
        if index in done:  # the converter shares equal biases (zeros) between gates
            return
        done.add(index)
        t = sg.tensors[index]
        t.type = ttype
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [0]
        buf = m.buffers[t.buffer]
        if buf.data is not None and len(buf.data):
            values = np.frombuffer(bytes(buf.data), np.float32)
            npt = {tt.INT8: np.int8, tt.INT64: np.int64}[ttype]
            q = np.clip(np.round(values / scale), np.iinfo(npt).min, np.iinfo(npt).max)
            buf.data = np.frombuffer(q.astype(npt).tobytes(), np.uint8)

    x_scale, h_scale = 4.0 / 32767, 1.0 / 32767
    quantize(op.inputs[0], tt.INT16, x_scale)
    w_scales = {}
    for k in range(1, 9):
        data = np.frombuffer(bytes(m.buffers[sg.tensors[op.inputs[k]].buffer].data), np.float32)
        w_scales[k] = float(np.float32(max(float(np.abs(data).max()), 1e-6) / 127))
        quantize(op.inputs[k], tt.INT8, w_scales[k])
    for k, w in zip(range(12, 16), range(1, 5), strict=True):
        quantize(op.inputs[k], tt.INT64, float(np.float32(x_scale) * np.float32(w_scales[w])))
    quantize(op.inputs[18], tt.INT16, h_scale)
    quantize(op.inputs[19], tt.INT16, 2.0 ** -11)
    quantize(op.outputs[0], tt.INT16, h_scale)
    if time_major:  # the same layer reading [steps, batch, features]
        for t in (sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]):
            t.shape = [t.shape[1], t.shape[0], *t.shape[2:]]
            t.shapeSignature = None
    op.builtinOptions.timeMajor = time_major
    op.builtinOptions.cellClip = clip
    fb = flatbuffers.Builder(0)
    fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
    return bytes(fb.Output())


lstm_params = st.fixed_dictionaries({
    "units": st.integers(1, 8), "steps": st.integers(1, 6), "features": st.integers(1, 6),
    "seq": st.booleans(), "dense": st.booleans(), "batch": st.just(1),
    "seed": st.integers(0, 3)})


@PROPS
@given(p=lstm_params)
def test_keras_lstm_int8(p: dict[str, Any], settings: Settings, tmp_path: Path) -> None:
    model = keras_lstm(settings, p, "int8")
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in tflite.inspect(model).ops
    assert_bit_exact(model, tmp_path / "m", samples=8)


@PROPS
@given(p=lstm_params, batch=st.integers(1, 2), time_major=st.booleans(),
       clip=st.sampled_from([0.0, 3.0]))
def test_keras_lstm_16x8(p: dict[str, Any], batch: int, time_major: bool, clip: float,
                         settings: Settings, tmp_path: Path) -> None:
    p = {**p, "seq": True, "dense": False, "batch": batch}
    model = quantize_16x8(keras_lstm(settings, p, "float"), time_major=time_major, clip=clip)
    info = tflite.inspect(model)
    assert info.ops == ["UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert {t.dtype for t in [*info.inputs, *info.outputs]} == {"int16"}
    assert_bit_exact(model, tmp_path / "m", samples=8)
