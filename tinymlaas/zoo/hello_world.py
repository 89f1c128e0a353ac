"""TFLM's hello_world: a 1→16→16→1 MLP that learns sin(x) on [0, 2π]."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinymlaas.zoo import Recipe
from tinymlaas.zoo._convert import seed_everything, to_float_tflite, to_int8_tflite


def _train(seed: int) -> tuple[Any, np.ndarray]:
    tf = seed_everything(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 2 * math.pi, 1000).astype(np.float32)
    y = np.sin(x).astype(np.float32)
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(1,)),
            tf.keras.layers.Dense(16, activation="relu"),
            tf.keras.layers.Dense(16, activation="relu"),
            tf.keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, epochs=80, batch_size=32, verbose=0, shuffle=True)
    return model, x


class HelloWorld(Recipe):
    name = "hello_world"
    description = "sine regression, 3 FULLY_CONNECTED layers, int8 (TFLM hello_world shapes)"

    def build(self, seed: int) -> bytes:
        model, x = _train(seed)
        return to_int8_tflite(model, x[:500, np.newaxis])

    def sample_inputs(self) -> np.ndarray:
        return np.arange(7, dtype=np.float32)[:, np.newaxis]


class HelloWorldFloat(HelloWorld):
    name = "hello_world_float"
    description = "sine regression, 3 FULLY_CONNECTED layers, float32"

    def build(self, seed: int) -> bytes:
        model, _ = _train(seed)
        return to_float_tflite(model)
