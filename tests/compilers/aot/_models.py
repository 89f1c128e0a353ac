"""Small Keras models converted by TensorFlow, cached by their parameters.

Property tests draw parameters; each distinct parameter set is trained-free
(random weights, seeded), converted once to full-int8 TFLite and cached under
var/cache/aot-ops, so reruns do not convert again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from tinymlaas.compilers.aot import compile_source
from tinymlaas.compilers.aot.hostrun import HOST_CFLAGS, HostModule
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm

CACHE_VERSION = 1


def convert(settings: Settings, kind: str, params: dict[str, Any],
            build: Callable[[Any, Any, dict[str, Any]], Any], input_shape: tuple[int, ...],
            float_io: bool = False) -> bytes:
    """Build ``build(tf, input, params)`` (returns the output), convert, cache."""
    key = json.dumps({"kind": kind, "p": params, "in": input_shape, "f": float_io,
                      "v": CACHE_VERSION, "tf": version("tensorflow-cpu")}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = settings.data_dir / "cache" / "aot-ops" / f"{kind}-{digest}.tflite"
    if path.exists():
        return path.read_bytes()
    from tinymlaas.zoo._convert import seed_everything

    tf = seed_everything(int(params.get("seed", 0)))
    inp = tf.keras.Input(shape=input_shape)
    model = tf.keras.Model(inp, build(tf, inp, params))
    rng = np.random.default_rng(int(params.get("seed", 0)))
    rep = rng.normal(0.0, 1.0, (64, *input_shape)).astype(np.float32)

    def dataset() -> Any:
        for row in rep:
            yield [row[np.newaxis]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = dataset
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    data = bytes(conv.convert())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_bytes(data)
    path.with_suffix(".tmp").replace(path)
    return data


class _TfliteReference:
    """TensorFlow Lite's reference kernels: the oracle where TFLM itself is unreliable.

    TFLM's int8 SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND read an uninitialised pad value
    (outputs of a 1x1 conv on a constant image come out non-uniform and differ between
    processes), so dilated convs are checked against TFLite's reference kernels, which
    share TFLM's integer arithmetic.
    """

    def __init__(self, model: bytes) -> None:
        import tensorflow as tf

        self._it = tf.lite.Interpreter(
            model_content=model,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
        self._it.allocate_tensors()
        self.input = self._it.get_input_details()[0]

    def invoke(self, x: np.ndarray) -> np.ndarray:
        self._it.set_tensor(self.input["index"], x.reshape(self.input["shape"]))
        self._it.invoke()
        return self._it.get_tensor(self._it.get_output_details()[0]["index"]).copy()


#: The host build, and the same source with the ARMv7E-M dual-MAC data flow in portable C.
HOST_VARIANTS = (HOST_CFLAGS, (*HOST_CFLAGS, "-DAOT_EMULATE_DSP"))


def assert_bit_exact(model: bytes, tmp: Path, samples: int = 6, seed: int = 0) -> Any:
    """Compile with aot, build on the host (both variants), compare every output byte
    with TFLM."""
    out = compile_source(model)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "model.c").write_text(out.source.c)
    (tmp / "model.h").write_text(out.source.h)
    from tinymlaas import tflite

    oracle: Any = (_TfliteReference(model) if "SPACE_TO_BATCH_ND" in tflite.inspect(model).ops
                   else Tflm(model))
    shape, dtype = oracle.input["shape"], oracle.input["dtype"]
    for cflags in HOST_VARIANTS:
        rng = np.random.default_rng(seed)
        with HostModule(tmp, cflags=cflags) as mod:
            for i in range(samples):
                if np.issubdtype(dtype, np.floating):
                    x = rng.normal(0.0, 1.5, shape).astype(np.float32)
                elif i == 0:
                    x = np.full(shape, -128, dtype=np.int8)
                elif i == 1:
                    x = np.full(shape, 127, dtype=np.int8)
                else:
                    x = rng.integers(-128, 128, shape).astype(np.int8)
                ours = mod.invoke(x)
                theirs = oracle.invoke(x).ravel()
                assert ours.tobytes() == theirs.tobytes(), (
                    f"{cflags[-1]} sample {i}: "
                    f"{np.flatnonzero(ours.view(np.uint8) != theirs.view(np.uint8))[:8]}"
                    f" ours {ours[:8]} tflm {theirs[:8]}")
    return out
