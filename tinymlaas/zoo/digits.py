"""A small CNN on scikit-learn's bundled 8x8 digits: conv, depthwise, pooling, dense, softmax.

Sized for the microcontroller targets: its widest activations (8x8x144 int8,
9 KiB) make the planned arena too big for an 8 KiB-RAM board and comfortable
for a 16 KiB one.
"""

from __future__ import annotations

import numpy as np

from tinymlaas.zoo import Recipe
from tinymlaas.zoo._convert import seed_everything, to_int8_tflite


def _data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., np.newaxis]
    return x, digits.target.astype(np.int64)


class DigitsCnn(Recipe):
    name = "digits_cnn"
    description = "8x8 digit classifier: CONV_2D, DEPTHWISE_CONV_2D, pooling, dense, softmax; int8"
    #: Channels of the two wide layers (kept in the class: the cache key is its source).
    width = 144

    def build(self, seed: int) -> bytes:
        tf = seed_everything(seed)
        x, y = _data()
        order = np.random.default_rng(seed).permutation(len(x))
        x, y = x[order], y[order]
        layers = tf.keras.layers
        model = tf.keras.Sequential([
            tf.keras.Input(shape=(8, 8, 1)),
            layers.Conv2D(self.width, 3, padding="same", activation="relu"),
            layers.Conv2D(self.width, 1, activation="relu"),
            layers.MaxPooling2D(2),
            layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="valid", activation="relu"),
            layers.AveragePooling2D(2),
            layers.Flatten(),
            layers.Dense(10),
            layers.Softmax(),
        ])
        model.compile(optimizer=tf.keras.optimizers.Adam(0.003),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x[:1500], y[:1500], epochs=6, batch_size=32, verbose=0, shuffle=True)
        return to_int8_tflite(model, x[:300])

    def sample_inputs(self) -> np.ndarray:
        x, _ = _data()
        return x[-10:]

    def labels(self) -> np.ndarray:
        """The true digits of :meth:`sample_inputs`."""
        return _data()[1][-10:]
