"""The LwM2M orchestrator plugin against an in-process device running the real TFLM."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _devices import TflmRuntime

from tinymlaas import tflite
from tinymlaas.config import LwM2MSettings
from tinymlaas.edge.lwm2m import codec
from tinymlaas.edge.lwm2m.agent import DeviceObject, FirmwareUpdate, TinyMLObject
from tinymlaas.edge.lwm2m.client import LwM2MClient
from tinymlaas.edge.lwm2m.vocab import FwDelivery, FwProtocol
from tinymlaas.edge.tflm import Tflm
from tinymlaas.errors import Forbidden
from tinymlaas.models import Package
from tinymlaas.orchestrators.lwm2m import LwM2MOrchestrator
from tinymlaas.plugins.registry import orchestrator_plugin
from tinymlaas.store.artifacts import ArtifactStore

pytestmark = [pytest.mark.lwm2m, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_it_is_the_registered_orchestrator_plugin() -> None:
    assert orchestrator_plugin("lwm2m") is LwM2MOrchestrator


async def test_capabilities_infer_and_results(hello_world: bytes, tmp_path: Path) -> None:
    orch = LwM2MOrchestrator(LwM2MSettings(port=0))
    await orch.start(tmp_path)
    tinyml = TinyMLObject(TflmRuntime(hello_world))
    client = LwM2MClient("tiny-1", orch.join_info().uri,
                         [DeviceObject({0: "TinyMLaaS", 1: "in-process", 3: "0.1", 21: 1024}), tinyml])
    await client.start()
    try:
        await asyncio.wait_for(client.registered.wait(), 5)
        (dev,) = orch.devices()
        assert dev.online and dev.endpoint == "tiny-1" and 33100 in dev.objects
        caps = await orch.capabilities("tiny-1")
        assert caps.ram_bytes == 65536 and caps.accelerators == ["none"]
        assert caps.model_sha256 == tflite.inspect(hello_world).sha256 and caps.storage_total_kb == 1024
        assert caps.tensors is not None and caps.tensors["inputs"][0]["dtype"] == "int8"
        assert not caps.fota and not caps.sota  # this device has neither object 5 nor 9

        results = await orch.subscribe("tiny-1")  # the observation is in place when it returns
        first = asyncio.ensure_future(anext(results))
        report = await orch.infer("tiny-1", np.array([-128], dtype=np.int8).tobytes())
        oracle = Tflm(hello_world).invoke(np.array([[-128]], dtype=np.int8)).ravel().tolist()
        assert report.output == oracle and report.count == 1 and report.latency_us == 7
        assert report.values is not None and abs(report.values[0]) < 0.15  # sin(0)
        seen = await asyncio.wait_for(first, 5)
        assert seen.count == 1 and seen.output == oracle
        await results.aclose()  # type: ignore[attr-defined]
    finally:
        await client.stop()
        await orch.stop()


class InPlaceFirmware:
    """A device that flashes in place (like the MCU bridge) and then runs the new version."""

    max_bytes = 1 << 20

    def __init__(self, device: DeviceObject, image: bytes) -> None:
        self.device, self.image = device, image

    def check(self, image: Path) -> tuple[str, str]:
        if image.read_bytes() != self.image:
            raise ValueError("not for this device")
        return "fw", "2.0.0"

    async def install(self, image: Path) -> None:
        self.device.set(3, "2.0.0")


async def stock_device(orch: LwM2MOrchestrator, ep: str, work: Path, image: bytes, **fw: Any) -> LwM2MClient:
    """A stock LwM2M 1.1 client: it announces only SenML JSON and reports how it takes firmware."""
    device = DeviceObject({0: "Stock", 1: "stock-1.1", 3: "1.0.0", 21: 1024})
    firmware = FirmwareUpdate(InPlaceFirmware(device, image), work / ep, **fw)
    client = LwM2MClient(ep, orch.join_info().uri, [device, firmware], content_formats=(codec.SENML_JSON,))
    await client.start()
    await asyncio.wait_for(client.registered.wait(), 5)
    return client


@pytest.mark.parametrize(("fw", "delivery"), [
    ({"protocols": (FwProtocol.coap,), "delivery": FwDelivery.pull}, "pull over CoAP"),
    ({"protocols": (), "delivery": FwDelivery.push}, "push (the server writes the package block-wise)"),
])
async def test_fota_by_the_delivery_method_the_device_has(tmp_path: Path, fw: dict[str, Any],
                                                          delivery: str) -> None:
    """Default settings; the device reads 5/0/8 and 5/0/9 as CoAP-only pull, or push only."""
    orch = LwM2MOrchestrator(LwM2MSettings(port=0))
    await orch.start(tmp_path)
    image = bytes(range(256)) * 40  # 10 KiB: many blocks
    sha = ArtifactStore(tmp_path / "artifacts").put_bytes(image)
    client = await stock_device(orch, "stock", tmp_path, image, **fw)
    steps: list[str] = []
    try:
        caps = await orch.capabilities("stock")
        assert caps.firmware_version == "1.0.0" and caps.manufacturer == "Stock"
        package = Package(sha256=sha, size=len(image), kind="firmware")
        out = await orch.deploy_firmware("stock", package, download_base="http://127.0.0.1:9",
                                         progress=lambda step, _: steps.append(step))
        assert out.succeeded, out
        assert out.delivery == delivery and out.firmware_after == "2.0.0"
        assert any(("over CoAP" in s) if "pull" in delivery else ("pushes" in s) for s in steps), steps
        # The grant ended with the deployment: the CoAP URL no longer opens the package.
        with pytest.raises(Forbidden):
            orch._package_file("stock", sha, "guess", "127.0.0.1")
    finally:
        await client.stop()
        await orch.stop()


@pytest.mark.parametrize(("protocols", "theirs"), [
    ((FwProtocol.coaps, FwProtocol.coap_tcp), "CoAPS or CoAP over TCP"),
    ((FwProtocol.https,), "HTTPS"),  # the API's URL is http://: HTTPS is not offered
])
async def test_a_device_whose_methods_this_server_lacks_fails_at_once(
        tmp_path: Path, protocols: tuple[FwProtocol, ...], theirs: str) -> None:
    orch = LwM2MOrchestrator(LwM2MSettings(port=0))
    await orch.start(tmp_path)
    image = b"\x01" * 100
    sha = ArtifactStore(tmp_path / "artifacts").put_bytes(image)
    client = await stock_device(orch, "pull-only", tmp_path, image, protocols=protocols,
                                delivery=FwDelivery.pull)
    try:
        t0 = time.monotonic()
        out = await orch.deploy_firmware("pull-only", Package(sha256=sha, size=100, kind="firmware"),
                                         download_base="http://127.0.0.1:9")
        assert time.monotonic() - t0 < 2 and not out.succeeded
        assert out.detail == (f"device 'pull-only' cannot be sent this package: the device takes firmware "
                              f"by pull over {theirs}; this server offers pull over CoAP or HTTP, or push")
    finally:
        await client.stop()
        await orch.stop()
