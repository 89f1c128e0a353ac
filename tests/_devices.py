"""Device parts for unit tests of the orchestrators: a real TFLM runtime, in process, and an HTTP
pull device around it on its own thread."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from tinymlaas import tflite
from tinymlaas.edge.pull import PullAgent
from tinymlaas.edge.signing import unwrap
from tinymlaas.edge.tensors import pack, unpack
from tinymlaas.edge.tflm import Tflm


class TflmRuntime:
    """An InferenceRuntime over the real interpreter, as a device would have it."""

    def __init__(self, model: bytes) -> None:
        self.info = tflite.inspect(model)
        self.tflm = Tflm(model, inputs=len(self.info.inputs), outputs=len(self.info.outputs))

    def capabilities(self) -> dict[int, Any]:
        tensors = {"inputs": [t.model_dump() for t in self.info.inputs],
                   "outputs": [t.model_dump() for t in self.info.outputs]}
        return {0: 65536, 1: 16 << 20, 2: "x86-64", 3: 0, 4: {0: "none"}, 5: "tflite-micro",
                6: self.info.sha256, 7: "hello_world", 8: 2048, 15: json.dumps(tensors), 16: "in-process"}

    async def infer(self, tensor: bytes) -> tuple[bytes, int, int | None]:
        """Every input unpacked from the bytes the protocol carries, every output packed back."""
        ins = [t.model_dump() for t in self.info.inputs]
        outs = self.tflm.invoke_all(unpack(ins, tensor))
        return pack([t.model_dump() for t in self.info.outputs], outs), 7, None


class InPlaceFirmware:
    """A firmware slot that installs without rebooting (as a bridge could); images are b"FW<version>".
    With a trust key it takes only images signed with it."""

    max_bytes = 1 << 16

    def __init__(self, trust: bytes | None = None) -> None:
        self.version = "1.0.0"
        self.trust = trust

    def check(self, image: Path) -> tuple[str, str]:
        unwrap(image, self.trust)
        data = image.read_bytes()
        if not data.startswith(b"FW"):
            raise ValueError("not a firmware image")
        return "fw", data[2:].decode()

    async def install(self, image: Path) -> None:
        self.version = image.read_bytes()[2:].decode()  # checked (and unwrapped) before


class Device:
    """A pull agent on its own thread and event loop, as on a device."""

    def __init__(self, url: str, endpoint: str, token: str | None, model: bytes, workdir: Path,
                 trust: bytes | None = None) -> None:
        self.firmware = InPlaceFirmware(trust)
        self.runtime = TflmRuntime(model)

        def device() -> dict[int, Any]:
            return {0: "TinyMLaaS", 1: "in-process", 2: endpoint, 3: self.firmware.version, 21: 64}

        self.agent = PullAgent(url, endpoint, device=device, firmware=self.firmware, modules=None,
                               inference=self.runtime, workdir=workdir, token=token, wait_s=1.0)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(self.agent.run(self.stop)),
                                       daemon=True)

    def __enter__(self) -> Device:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


class LwM2MDevice:
    """An LwM2M client with the TinyML object over a real TFLM runtime, on its own thread and loop."""

    def __init__(self, uri: str, endpoint: str, model: bytes) -> None:
        from tinymlaas.edge.lwm2m.agent import DeviceObject, TinyMLObject
        from tinymlaas.edge.lwm2m.client import LwM2MClient

        self.runtime = TflmRuntime(model)
        self.tinyml = TinyMLObject(self.runtime)
        device = DeviceObject({0: "TinyMLaaS", 1: "in-process"})
        self.client = LwM2MClient(endpoint, uri, [device, self.tinyml], lifetime=60)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LwM2MDevice:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.client.start(), self.loop).result(10)
        registered = asyncio.wait_for(self.client.registered.wait(), 10)
        asyncio.run_coroutine_threadsafe(registered, self.loop).result()
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.client.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
