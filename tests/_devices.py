"""Device parts for unit tests of the orchestrators: a real TFLM runtime, in process."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tinymlaas import tflite
from tinymlaas.edge.tflm import Tflm


class TflmRuntime:
    """An InferenceRuntime over the real interpreter, as a device would have it."""

    def __init__(self, model: bytes) -> None:
        self.tflm = Tflm(model)
        self.info = tflite.inspect(model)

    def capabilities(self) -> dict[int, Any]:
        tensors = {"inputs": [t.model_dump() for t in self.info.inputs],
                   "outputs": [t.model_dump() for t in self.info.outputs]}
        return {0: 65536, 1: 16 << 20, 2: "x86-64", 3: 0, 4: {0: "none"}, 5: "tflite-micro",
                6: self.info.sha256, 7: "hello_world", 8: 2048, 15: json.dumps(tensors), 16: "in-process"}

    async def infer(self, tensor: bytes) -> tuple[bytes, int, int | None]:
        out = self.tflm.invoke(np.frombuffer(tensor, dtype=np.int8).reshape(1, 1))
        return out.tobytes(), 7, None
