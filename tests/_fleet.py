"""A small fleet for tests of the registry and rollouts: in-process LwM2M devices (the real
client, Device, Firmware Update and TinyML objects) on their own event loop, whose firmware
is ``b"FW<version>"`` installed in place; and builds of such firmware in a real store."""

from __future__ import annotations

import asyncio
import threading
import time
import zipfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tinymlaas import tflite
from tinymlaas.edge.lwm2m.agent import DeviceObject, FirmwareUpdate, TinyMLObject
from tinymlaas.edge.lwm2m.client import Instance, LwM2MClient
from tinymlaas.edge.lwm2m.vocab import Bridged, Dev, Obj
from tinymlaas.edge.signing import unwrap
from tinymlaas.edge.x86 import FirmwareImage
from tinymlaas.models import Build, CompilerInfo, JobState, ModuleMemory, StoredFirmware, StoredModule
from tinymlaas.store import Store


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``check`` until it gives something true, and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def make_build(store: Store, model: bytes, version: str, target: str = "x86-tflm") -> Build:
    """A finished build whose OS image is ``b"FW<version>"`` (what the simulated devices take)."""
    info = tflite.inspect(model)
    rec = store.add_model("hello_world", model, source="test", info=info)
    job = store.new_job("build")
    build = store.add_build(job_id=job.id, model_id=rec.id, target=target, compiler="tflm", options={},
                            builder="test", version=version)
    sha = store.artifacts.put_bytes(b"FW" + version.encode())
    module = StoredModule(name="hello_world", kind="tflm-bundle" if target == "x86-tflm" else "c-source",
                          target=target, model_sha256=info.sha256, ops=info.ops, inputs=info.inputs,
                          outputs=info.outputs, compiler=CompilerInfo(name="tflm", version="test"),
                          memory=ModuleMemory(), artifacts={"model.tflite": rec.sha256})
    fw = StoredFirmware(board=target, version=version, model_sha256=info.sha256, image="firmware.bin",
                        image_sha256=sha, files={"firmware.bin": sha}, sizes={}, headroom={},
                        artifacts={"firmware.bin": sha})
    done = store.finish_build(build.id, module=module, firmware=fw)
    store.update_job(job.id, state=JobState.succeeded)
    return done


class Runtime:
    """What the TinyML object reports (the board, CPU, runtime and model); no inference here."""

    def __init__(self, model: bytes, board: str, cpu: str) -> None:
        self.sha = tflite.inspect(model).sha256
        self.board, self.cpu = board, cpu

    def capabilities(self) -> dict[int, Any]:
        return {0: 65536, 1: 16 << 20, 2: self.cpu, 3: 0, 4: {0: "none"}, 5: "tflite-micro test",
                6: self.sha, 7: "hello_world", 8: 0, 16: self.board}

    async def infer(self, tensor: bytes) -> tuple[bytes, int, int | None]:
        raise RuntimeError("this simulated device runs no model")


class Firmware:
    """Installs ``b"FW<version>"`` in place. ``refuse``: says the image is not for it;
    ``broken``: the new version starts, then fails (it is not the old one any more);
    ``slow_s``: installing takes this long; ``x86_images``: also takes a real x86 OS image (a
    build's ``firmware.pyz``: the version its manifest says)."""

    max_bytes = 1 << 16

    def __init__(self, device: DeviceObject, *, refuse: bool = False, broken: bool = False,
                 slow_s: float = 0.0, x86_images: bool = False) -> None:
        self.device, self.refuse, self.broken, self.slow_s = device, refuse, broken, slow_s
        self.x86_images = x86_images
        if x86_images:
            self.max_bytes = 16 << 20

    def check(self, image: Path) -> tuple[str, str]:
        unwrap(image, None)  # the service signs what it sends; these devices check no signature
        if self.x86_images and zipfile.is_zipfile(image):
            return "x86 firmware", str(FirmwareImage.open(image).manifest["version"])
        data = image.read_bytes()
        if self.refuse or not data.startswith(b"FW"):
            raise ValueError("not firmware for this device")
        return "fw", data[2:].decode()

    async def install(self, image: Path) -> None:
        await asyncio.sleep(self.slow_s)
        version = self.check(image)[1]
        self.device.set(Dev.FIRMWARE_VERSION, version)
        if self.broken and version != "1.0.0":
            self.broken = False  # its next install (the old version) works
            raise RuntimeError(f"{version} crashed after it started")


class Fleet:
    """Simulated devices on one event loop in a thread; ``with`` stops them."""

    def __init__(self, uri: str, workdir: Path, model: bytes) -> None:
        self.uri, self.workdir, self.model = uri, workdir, model
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clients: dict[str, LwM2MClient] = {}
        self.devices: dict[str, DeviceObject] = {}

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(self, endpoint: str, *, board: str = "x86-tflm", cpu: str = "x86-64", version: str = "1.0.0",
            lifetime: int = 10, extra: Callable[[], list[Instance]] | None = None,
            **firmware: Any) -> LwM2MClient:
        async def start() -> LwM2MClient:
            device = DeviceObject({0: "TinyMLaaS", 1: board, 2: endpoint, 3: version, 21: 1024})
            objects: list[Instance] = [device]
            if extra is None:
                objects += [FirmwareUpdate(Firmware(device, **firmware), self.workdir / endpoint),
                            TinyMLObject(Runtime(self.model, board, cpu))]
            else:
                objects += extra()
            client = LwM2MClient(endpoint, self.uri, objects, lifetime=lifetime, retry_max_s=1.0)
            await client.start()
            self.devices[endpoint] = device
            return client

        self.clients[endpoint] = self.run(start())
        return self.clients[endpoint]

    def version(self, endpoint: str) -> str:
        return str(self.devices[endpoint].values[Dev.FIRMWARE_VERSION])

    def close(self) -> None:
        for client in self.clients.values():
            self.run(client.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bridged(boards: dict[str, str], health: str = "running") -> list[Instance]:
    """A bridge's Bridged Board instances (endpoint -> board)."""
    return [Instance(Obj.BRIDGED_BOARD, i, {Bridged.ENDPOINT: ep, Bridged.BOARD: board,
                                            Bridged.HEALTH: health, Bridged.FIRMWARE_VERSION: "1.0.0",
                                            Bridged.RESTARTS: 0})
            for i, (ep, board) in enumerate(sorted(boards.items()))]
