"""Queue mode (a device that sleeps between its messages) and LwM2M Send, in one process over
real UDP: requests wait for the device to wake, the API answers "queued" and the result later."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from _devices import TflmRuntime

from tinymlaas.config import LwM2MSettings
from tinymlaas.edge.lwm2m.agent import DeviceObject, TinyMLObject
from tinymlaas.edge.lwm2m.client import Instance, LwM2MClient
from tinymlaas.errors import DeviceUnreachable
from tinymlaas.jobs import JobRunner
from tinymlaas.lwm2m.server import LwM2MServer
from tinymlaas.models import InferenceReport, JobState, QueuedRequest
from tinymlaas.orchestrators.lwm2m import LwM2MOrchestrator
from tinymlaas.services.devices import infer_or_queue
from tinymlaas.store import Store

pytestmark = [pytest.mark.lwm2m, pytest.mark.anyio]
QUICK = LwM2MSettings(port=0, ack_timeout_s=0.3, max_retransmit=1, request_timeout_s=5,
                      queue_awake_s=0.5, queue_timeout_s=10)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def sleeper(uri: str, ep: str, objects: list[Instance], lifetime: int = 4) -> LwM2MClient:
    """A device in queue mode: awake 0.6 s after each message, an Update every lifetime/2 s."""
    client = LwM2MClient(ep, uri, objects, lifetime=lifetime, queue_mode=True, awake_s=0.6)
    await client.start()
    await asyncio.wait_for(client.registered.wait(), 5)
    return client


async def asleep(client: LwM2MClient) -> None:
    while not client.asleep:
        await asyncio.sleep(0.05)


async def test_requests_to_a_sleeping_device_wait_for_its_next_update() -> None:
    srv = LwM2MServer(QUICK)
    await srv.start()
    client = await sleeper(srv.uri, "sleepy", [Instance(3, 0, {0: "TinyMLaaS", 13: 1})])
    try:
        assert srv.devices()[0]["queue_mode"] is True
        await asleep(client)
        assert srv.queued("sleepy")
        t0 = time.monotonic()
        reads = [asyncio.ensure_future(srv.read_value("sleepy", "/3/0/0")) for _ in range(3)]
        await asyncio.sleep(0.2)
        assert not any(r.done() for r in reads) and srv.devices()[0]["queued"] == 3
        assert await asyncio.gather(*reads) == ["TinyMLaaS"] * 3  # sent once it updated (~2 s)
        assert 0.5 < time.monotonic() - t0 < 4 and srv.devices()[0]["queued"] == 0
    finally:
        await client.stop()
        await srv.stop()


async def test_a_sleeping_device_that_never_wakes_is_a_clear_error() -> None:
    srv = LwM2MServer(QUICK.model_copy(update={"queue_timeout_s": 0.5}))
    await srv.start()
    client = await sleeper(srv.uri, "late", [Instance(3, 0, {0: "TinyMLaaS"})], lifetime=60)
    gone = await sleeper(srv.uri, "gone", [Instance(3, 0, {0: "TinyMLaaS"})], lifetime=2)
    try:
        await asleep(client)
        with pytest.raises(DeviceUnreachable, match=r"device 'late' sleeps \(queue mode\) and did not wake "
                                                    r"within 0 s, so Read /3/0/0 was not sent"):
            await srv.read("late", "/3/0/0")
        await asleep(gone)
        await gone.stop(deregister=False)  # it never comes back: its lifetime ends
        srv.settings.queue_timeout_s = 10
        with pytest.raises(DeviceUnreachable, match=r"device 'gone' went offline \(lifetime expired\) "
                                                    "while requests waited for it to wake"):
            await srv.read("gone", "/3/0/0")
    finally:
        await client.stop()
        await srv.stop()


async def test_the_api_answers_queued_then_the_result_and_send_feeds_the_results_stream(
        hello_world: bytes, tmp_path: Path) -> None:
    orch = LwM2MOrchestrator(QUICK)
    await orch.start(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "artifacts")
    runner = JobRunner(store)
    tinyml = TinyMLObject(TflmRuntime(hello_world))
    client = await sleeper(orch.join_info().uri or "", "battery",
                           [DeviceObject({0: "TinyMLaaS", 3: "1.0"}), tinyml])
    try:
        results = await orch.subscribe("battery")
        first = asyncio.ensure_future(anext(results))
        await asleep(client)
        out = await infer_or_queue(orch, runner, store, "battery", values=None, raw=[-128])
        assert isinstance(out, QueuedRequest) and out.state == "queued"
        assert store.job(out.job.id).step == "queued until the device wakes (queue mode)"
        while store.job(out.job.id).state in (JobState.queued, JobState.running):  # its next Update
            await asyncio.sleep(0.1)
        assert store.job(out.job.id).state == JobState.succeeded, store.job(out.job.id).error
        report = InferenceReport.model_validate(store.job(out.job.id).result)
        assert report.count == 1 and report.endpoint == "battery"
        assert (await asyncio.wait_for(first, 5)).count == 1  # from the observation
        # The device runs one on its own and reports it by LwM2M Send: same stream.
        await asleep(client)
        second = asyncio.ensure_future(anext(results))
        out2, _, _ = await tinyml.runtime.infer(np.array([10], dtype=np.int8).tobytes())
        tinyml.values[11] = 2  # changed without a notification (no observer of these)
        tinyml.values[10] = out2
        results_obs = orch.srv._observations
        for o in list(results_obs):
            o.cancel()  # only Send can tell the server now
        await client.send([(33100, 0)])
        sent = await asyncio.wait_for(second, 5)
        assert sent.count == 2 and sent.output == list(np.frombuffer(out2, dtype=np.int8))
        await results.aclose()  # type: ignore[attr-defined]
        await runner.drain()
    finally:
        await client.stop()
        await orch.stop()
        store.close()
