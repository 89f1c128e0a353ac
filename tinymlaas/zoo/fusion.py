"""Sensor fusion with two inputs and two outputs: the shape of many real TinyML models.

Motion features (8 values, e.g. statistics of an accelerometer window) and context (3 values:
temperature in °C, hour of the day, battery charge) go in; an activity class (3 probabilities) and an anomaly
score come out. The data is generated here, so nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinymlaas.zoo import Recipe
from tinymlaas.zoo._convert import seed_everything, to_int8_tflite

MOTION, CONTEXT, CLASSES = 8, 3, 3


def samples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(motion, context, class, anomaly): each class moves differently; an anomaly is motion far
    from its class's pattern, worse when it is hot."""
    rng = np.random.default_rng(seed)
    centres = np.linspace(-1.0, 1.0, CLASSES)[:, np.newaxis] * np.linspace(0.5, 1.5, MOTION)
    label = rng.integers(0, CLASSES, n)
    odd = rng.random(n) < 0.2
    motion = centres[label] + rng.normal(0.0, 0.25, (n, MOTION)) + odd[:, np.newaxis] * rng.normal(
        0.0, 1.5, (n, MOTION))
    context = rng.uniform((10.0, 0.0, 0.0), (40.0, 24.0, 1.0), (n, CONTEXT))  # °C, hour, battery
    hot = (context[:, 0] - 25.0) / 15.0
    anomaly = np.clip(np.abs(motion - centres[label]).mean(axis=1) * (1.0 + 0.3 * hot), 0, 2)
    return motion.astype(np.float32), context.astype(np.float32), label, anomaly.astype(np.float32)


class SensorFusion(Recipe):
    name = "sensor_fusion"
    description = ("two inputs (8 motion features, 3 context values) and two outputs (3 activity "
                   "probabilities, an anomaly score), int8")

    def build(self, seed: int) -> bytes:
        tf = seed_everything(seed)
        L = tf.keras.layers
        motion, context, label, anomaly = samples(2000, seed)
        m_in, c_in = tf.keras.Input(shape=(MOTION,), name="motion"), tf.keras.Input(shape=(CONTEXT,),
                                                                                   name="context")
        c = L.Dense(4, activation="relu")(L.Rescaling(1 / 20.0)(c_in))
        h = L.Dense(16, activation="relu")(L.Concatenate()([L.Dense(12, activation="relu")(m_in), c]))
        activity = L.Dense(CLASSES, activation="softmax", name="activity")(h)
        score = L.Dense(1, name="anomaly")(L.Dense(8, activation="relu")(h))
        model: Any = tf.keras.Model([m_in, c_in], [activity, score])
        model.compile(optimizer=tf.keras.optimizers.Adam(0.01),
                      loss={"activity": "sparse_categorical_crossentropy", "anomaly": "mse"})
        model.fit([motion, context], {"activity": label, "anomaly": anomaly}, epochs=20, batch_size=64,
                  verbose=0)
        return to_int8_tflite(model, {"motion": motion[:300], "context": context[:300]})

    def sample_inputs(self) -> np.ndarray:
        """Rows of both inputs side by side (motion, then context)."""
        motion, context, _, _ = samples(8, 99)
        return np.concatenate([motion, context], axis=1)
