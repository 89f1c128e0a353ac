"""Streaming models with resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE,
CALL_ONCE initialising them), converted by TensorFlow: the state is kept in the arena
between invokes and every output byte over a sequence of invokes equals TFLM's."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _models import assert_bit_exact

from tinymlaas import tflite
from tinymlaas.compilers.aot import compile_source
from tinymlaas.compilers.aot.hostrun import HostModule
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm


def streaming_model(settings: Settings, mode: str, units: int = 4, seed: int = 0) -> bytes:
    """state <- tanh(state @ w + x); output 2 * state: one step of a recurrent filter."""
    key = json.dumps({"mode": mode, "units": units, "seed": seed,
                      "tf": version("tensorflow-cpu")}, sort_keys=True)
    path = (settings.data_dir / "cache" / "aot-ops" /
            f"streaming-{hashlib.sha256(key.encode()).hexdigest()[:16]}.tflite")
    if path.exists():
        return path.read_bytes()
    from tinymlaas.zoo._convert import seed_everything

    tf = seed_everything(seed)
    rng = np.random.default_rng(seed)

    class Step(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            self.state = tf.Variable(rng.normal(0, 0.3, (1, units)).astype(np.float32),
                                     trainable=False)
            self.w = tf.constant(rng.normal(0, 0.6, (units, units)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, units], tf.float32)])
        def __call__(self, x: Any) -> Any:
            new = tf.tanh(tf.matmul(self.state, self.w) + x)
            self.state.assign(new)
            return new * 2.0

    step = Step()
    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [step.__call__.get_concrete_function()], step)
    conv.experimental_enable_resource_variables = True
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.normal(0, 1, (1, units)).astype(np.float32)]
                                           for _ in range(32))
    if mode == "16x8":
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    data = bytes(conv.convert())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("units", [3, 8])
def test_state_carries_over_invokes(settings: Settings, tmp_path: Path, units: int) -> None:
    model = streaming_model(settings, "int8", units)
    ops = tflite.inspect(model).ops
    assert {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"} <= set(ops)
    assert_bit_exact(model, tmp_path / "m", samples=12)


def test_reset_returns_to_the_initial_values(settings: Settings, tmp_path: Path) -> None:
    model = streaming_model(settings, "int8")
    out = compile_source(model)
    (tmp_path / "model.c").write_text(out.source.c)
    (tmp_path / "model.h").write_text(out.source.h)
    x = np.array([[40, -90, 7, 127]], np.int8)
    tflm = Tflm(model)
    want = [tflm.invoke(x).tobytes() for _ in range(4)]
    with HostModule(tmp_path) as mod:
        assert [mod.invoke(x).tobytes() for _ in range(4)] == want
        mod.reset()
        assert [mod.invoke(x).tobytes() for _ in range(4)] == want
    assert len(set(want)) > 1  # the state moved the answer on
