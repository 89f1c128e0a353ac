"""Full-integer int8 conversion shared by the recipes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def seed_everything(seed: int) -> Any:
    """Import TensorFlow with deterministic, seeded kernels."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.keras.backend.clear_session()  # layer names end up in the flatbuffer
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return tf


def to_int8_tflite(model: Any, representative: np.ndarray | dict[str, np.ndarray]) -> bytes:
    """Convert a Keras model with int8 weights, activations, inputs and outputs. A model with
    several inputs gets its representative rows by input name (the converter orders its inputs
    its own way)."""
    import tensorflow as tf

    def dataset() -> Iterator[list[np.ndarray] | dict[str, np.ndarray]]:
        if isinstance(representative, dict):
            n = len(next(iter(representative.values())))
            for i in range(n):
                yield {k: v[i][np.newaxis].astype(np.float32) for k, v in representative.items()}
            return
        for row in representative:
            yield [row[np.newaxis].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = dataset
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def to_float_tflite(model: Any) -> bytes:
    import tensorflow as tf

    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
