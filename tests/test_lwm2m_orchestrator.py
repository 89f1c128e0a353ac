"""The LwM2M orchestrator plugin against an in-process device running the real TFLM."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from _devices import TflmRuntime

from tinymlaas import tflite
from tinymlaas.config import LwM2MSettings
from tinymlaas.edge.lwm2m.agent import DeviceObject, TinyMLObject
from tinymlaas.edge.lwm2m.client import LwM2MClient
from tinymlaas.edge.tflm import Tflm
from tinymlaas.orchestrators.lwm2m import LwM2MOrchestrator
from tinymlaas.plugins.registry import orchestrator_plugin

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
