"""LwM2M devices that are not the project's firmware, for step definitions (a helper module,
not a test file): a "stock" LwM2M 1.1 client as other vendors ship one, in its own thread
and event loop, over real UDP to the service.

It is the project's client configured as such a device is: it announces only the content
formats it has (``ct=110``: SenML JSON) and answers 4.06 to others, reports how it takes
firmware (5/0/8 protocols, 5/0/9 delivery method), installs in place, may sleep between its
messages (queue mode), and runs the real TFLM interpreter for its TinyML object.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from tinymlaas import tflite
from tinymlaas.edge.lwm2m import codec
from tinymlaas.edge.lwm2m.agent import DeviceObject, FirmwareUpdate, TinyMLObject
from tinymlaas.edge.lwm2m.client import LwM2MClient
from tinymlaas.edge.lwm2m.vocab import Dev, FwDelivery, FwProtocol
from tinymlaas.edge.tflm import Tflm


class Interpreter:
    """The device's inference runtime: the real TFLM interpreter, in process."""

    def __init__(self, model: bytes) -> None:
        self.tflm = Tflm(model)
        self.info = tflite.inspect(model)

    def capabilities(self) -> dict[int, Any]:
        tensors = {"inputs": [t.model_dump() for t in self.info.inputs],
                   "outputs": [t.model_dump() for t in self.info.outputs]}
        return {0: 262144, 1: 1 << 20, 2: "cortex-m4", 3: 64_000_000, 4: {0: "none"}, 5: "tflite-micro",
                6: self.info.sha256, 7: "hello_world", 8: 2048, 15: json.dumps(tensors), 16: "vendor-board"}

    async def infer(self, tensor: bytes) -> tuple[bytes, int, int | None]:
        return self.tflm.invoke(np.frombuffer(tensor, dtype=np.int8).reshape(1, 1)).tobytes(), 90, None


class InPlace:
    """Firmware that installs in place and comes up as the version it was told."""

    max_bytes = 4 << 20

    def __init__(self, device: DeviceObject, image: bytes, version: str) -> None:
        self.device, self.image, self.version = device, image, version

    def check(self, image: Path) -> tuple[str, str]:
        if image.read_bytes() != self.image:
            raise ValueError("not an image for this device")
        return "vendor firmware", self.version

    async def install(self, image: Path) -> None:
        self.device.set(Dev.FIRMWARE_VERSION, self.version)


class StockDevice:
    """A stock LwM2M 1.1 client in a thread of its own; ``call(coro)`` runs on its loop."""

    def __init__(self, endpoint: str, server: str, model: bytes, work: Path, *, image: bytes = b"",
                 delivery: FwDelivery = FwDelivery.both,
                 protocols: tuple[FwProtocol, ...] = (FwProtocol.coap,), queue_mode: bool = False,
                 awake_s: float = 93.0) -> None:
        self.image = image  # the firmware it takes (any other image it refuses)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"device-{endpoint}", daemon=True)
        self.thread.start()
        self.device = DeviceObject({Dev.MANUFACTURER: "Vendor Oy", Dev.MODEL: "stock-1.1",
                                    Dev.FIRMWARE_VERSION: "1.0.0", Dev.MEMORY_TOTAL: 1024})
        self.tinyml = TinyMLObject(Interpreter(model))
        self.firmware = FirmwareUpdate(InPlace(self.device, image, "2.0.0"), work / endpoint,
                                       protocols=protocols, delivery=delivery)
        self.client = self.call(self._client(endpoint, server, queue_mode, awake_s))

    async def _client(self, endpoint: str, server: str, queue_mode: bool, awake_s: float) -> LwM2MClient:
        client = LwM2MClient(endpoint, server, [self.device, self.firmware, self.tinyml],
                             lifetime=4 if queue_mode else 60, content_formats=(codec.SENML_JSON,),
                             queue_mode=queue_mode, awake_s=awake_s, retry_max_s=2)
        await client.start()
        await asyncio.wait_for(client.registered.wait(), 10)
        return client

    def call(self, coro: Any, timeout: float = 30) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def asleep(self) -> bool:
        return bool(self.client.asleep)

    def run_inference_and_send(self, tensor: bytes) -> None:
        """The device infers on its own and reports it by LwM2M Send."""

        async def go() -> None:
            output, latency, _ = await self.tinyml.runtime.infer(tensor)
            self.tinyml.record(tensor, output, latency, None)
            await self.client.send([(33100, 0)])

        self.call(go())

    def close(self) -> None:
        try:
            self.call(self.client.stop(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
