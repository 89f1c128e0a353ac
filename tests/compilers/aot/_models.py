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

from tinymlaas import tflite
from tinymlaas.compilers.aot import compile_source
from tinymlaas.compilers.aot.hostrun import HOST_CFLAGS, HostModule
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm

CACHE_VERSION = 1


def convert(settings: Settings, kind: str, params: dict[str, Any],
            build: Callable[[Any, Any, dict[str, Any]], Any],
            input_shape: tuple[int, ...] | list[tuple[int, ...]],
            float_io: bool = False, mode: str = "int8") -> bytes:
    """Build ``build(tf, input, params)`` (returns the output), convert, cache.

    ``input_shape`` may be a list of shapes: then ``build`` gets a list of inputs.
    ``mode``: "int8" (full integer), "16x8" (int16 activations, int8 weights, the
    converter's EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8) or "float".
    """
    key = json.dumps({"kind": kind, "p": params, "in": input_shape, "f": float_io,
                      "v": CACHE_VERSION, "tf": version("tensorflow-cpu"),
                      **({"mode": mode} if mode != "int8" else {})}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = settings.data_dir / "cache" / "aot-ops" / f"{kind}-{digest}.tflite"
    if path.exists():
        return path.read_bytes()
    from tinymlaas.zoo._convert import seed_everything

    tf = seed_everything(int(params.get("seed", 0)))
    shapes = input_shape if isinstance(input_shape, list) else [input_shape]
    inps = [tf.keras.Input(shape=sh, name=f"in{k}") for k, sh in enumerate(shapes)]
    model = tf.keras.Model(inps, build(tf, inps if isinstance(input_shape, list) else inps[0],
                                       params))
    rng = np.random.default_rng(int(params.get("seed", 0)))
    reps = [rng.normal(0.0, 1.0, (64, *sh)).astype(np.float32) for sh in shapes]

    def dataset() -> Any:
        for i in range(64):  # by name: the converter's signature orders inputs its own way
            yield {f"in{k}": r[i][np.newaxis] for k, r in enumerate(reps)}

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = dataset
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            if mode == "16x8" else tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io and mode != "float":
        conv.inference_input_type = tf.int16 if mode == "16x8" else tf.int8
        conv.inference_output_type = conv.inference_input_type
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
        self.inputs = self._it.get_input_details()

    def invoke_all(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        for d, x in zip(self.inputs, xs, strict=True):
            self._it.set_tensor(d["index"], x.reshape(d["shape"]))
        self._it.invoke()
        return [self._it.get_tensor(d["index"]).copy() for d in self._it.get_output_details()]


class _Tflm:
    """The TFLM interpreter on every input and output tensor."""

    def __init__(self, model: bytes) -> None:
        self._tflm = Tflm(model)
        self._it = self._tflm._it
        n = len(tflite.inspect(model).inputs)
        self.inputs = [self._it.get_input_details(k) for k in range(n)]
        self._outputs = len(tflite.inspect(model).outputs)

    def invoke_all(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        for k, (d, x) in enumerate(zip(self.inputs, xs, strict=True)):
            self._it.set_input(x.reshape(d["shape"]), k)
        self._it.invoke()
        return [np.array(self._it.get_output(k), copy=True) for k in range(self._outputs)]


#: The host build (the ARMv7-M data flow: two pixels packed per 64-bit accumulate), and the
#: same source with the ARMv7E-M dual-MAC data flow and with ARMv6-M's 32-bit multiplies,
#: in portable C.
HOST_VARIANTS = (HOST_CFLAGS, (*HOST_CFLAGS, "-DAOT_EMULATE_DSP"),
                 (*HOST_CFLAGS, "-DAOT_MUL32_ONLY"))
HOST_VARIANT_IDS = ["host", "emulated-dsp", "emulated-armv6m"]
#: Host libraries by the hash of their sources, flags and compiler (the property tests draw the
#: same examples each run, so a rerun on unchanged generated code skips gcc).
HOST_CACHE = Settings().data_dir / "cache" / "aot-host"


def assert_bit_exact(model: bytes, tmp: Path, samples: int = 6, seed: int = 0,
                     reference: bool = False) -> Any:
    """Compile with aot, build on the host (both variants), compare every output byte
    with TFLM (with TFLite's reference kernels where ``reference`` or TFLM is unreliable)."""
    out = compile_source(model)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "model.c").write_text(out.source.c)
    (tmp / "model.h").write_text(out.source.h)
    for cflags in HOST_VARIANTS:
        # A fresh oracle per build: stateful models start from their reset state.
        oracle: Any = (_TfliteReference(model) if reference or "SPACE_TO_BATCH_ND" in
                       tflite.inspect(model).ops else _Tflm(model))
        rng = np.random.default_rng(seed)
        with HostModule(tmp, cflags=cflags, cache=HOST_CACHE) as mod:
            for i in range(samples):
                xs = []
                for d in oracle.inputs:
                    shape, dtype = d["shape"], d["dtype"]
                    if np.issubdtype(dtype, np.floating):
                        xs.append(rng.normal(0.0, 1.5, shape).astype(np.float32))
                    else:
                        info = np.iinfo(dtype)
                        fill = {0: info.min, 1: info.max}.get(i)
                        xs.append(np.full(shape, fill, dtype=dtype) if fill is not None else
                                  rng.integers(info.min, info.max + 1, shape).astype(dtype))
                ours = mod.invoke_all(xs)
                theirs = [t.ravel() for t in oracle.invoke_all(xs)]
                for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
                    assert a.tobytes() == b.tobytes(), (
                        f"{cflags[-1]} sample {i} output {k}: "
                        f"{np.flatnonzero(a.view(np.uint8) != b.view(np.uint8))[:8]}"
                        f" ours {a[:8]} reference {b[:8]}")
    return out
