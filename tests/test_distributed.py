"""Beyond one machine, for real: a Redis and a PostgreSQL the tests start, two ``tinymlaas worker``
processes, two service instances sharing the database and the data directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tinymlaas.api.server import BackgroundServer
from tinymlaas.builders.container import INPUT_LABEL
from tinymlaas.config import ClusterSettings, Settings
from tinymlaas.jobs import JobRunner
from tinymlaas.store import Store
from tinymlaas.store.workers import JobLeaseRow
from tinymlaas.zoo import get_recipe

LEASE_S = 3.0
TINYMLAAS = str(Path(sys.executable).parent / "tinymlaas")


class Cluster:
    """Workers and instances on one database, data directory and broker."""

    def __init__(self, tmp: Path, database_url: str, broker_url: str) -> None:
        self.tmp, self.db, self.broker = tmp, database_url, broker_url
        self.data = tmp / "shared"
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.instances: list[BackgroundServer] = []
        self.store = Store(database_url, self.data / "artifacts")

    def settings(self, instance: str | None) -> Settings:
        base = Settings()
        return base.model_copy(update={
            "data_dir": self.data, "database_url": self.db, "zoo_dir": base.zoo_dir,
            "lwm2m": base.lwm2m.model_copy(update={"port": 0}),
            "cluster": ClusterSettings(broker_url=self.broker, instance=instance, lease_s=LEASE_S)})

    def start_worker(self, name: str) -> None:
        env = {**os.environ, "TINYMLAAS_DATA_DIR": str(self.data), "TINYMLAAS_DATABASE_URL": self.db,
               "TINYMLAAS_ZOO_DIR": str(Settings().zoo_dir), "TINYMLAAS_CLUSTER__BROKER_URL": self.broker,
               "TINYMLAAS_CLUSTER__LEASE_S": str(LEASE_S)}
        log = (self.tmp / f"{name}.log").open("wb")
        self.workers[name] = subprocess.Popen([TINYMLAAS, "worker", "--name", name], env=env, stdout=log,
                                              stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def start_instance(self, name: str) -> BackgroundServer:
        server = BackgroundServer(self.settings(name))
        self.instances.append(server)
        return server

    def owner(self, job_id: str) -> tuple[str | None, int]:
        with self.store.read() as db:
            lease = db.scalars(select(JobLeaseRow).where(JobLeaseRow.job_id == job_id)).one()
            return lease.owner, lease.attempts

    def close(self) -> None:
        for server in self.instances:
            server.stop()
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.store.close()


@pytest.fixture
def cluster(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Cluster]:
    c = Cluster(tmp_path, database_url, redis_url)
    try:
        yield c
    finally:
        c.close()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)


def build(api: httpx.Client, model: str) -> str:
    reply = api.post("/builds", json={"model": model, "target": "x86-tflm", "version": "1.0.0"})
    assert reply.status_code == 202, reply.text
    job_id: str = reply.json()["job"]["id"]
    return job_id


def ended(api: httpx.Client, job_id: str) -> Callable[[], bool]:
    return lambda: api.get(f"/jobs/{job_id}").json()["state"] in ("succeeded", "failed", "cancelled")


def test_without_a_broker_jobs_stay_in_the_process(tmp_path: Path) -> None:
    from tinymlaas.api.main import make_runner

    async def go() -> type[JobRunner]:
        store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "a")
        runner = make_runner(store, Settings(data_dir=tmp_path), "local")
        await runner.drain()
        store.close()
        return type(runner)

    assert asyncio.run(go()) is JobRunner


@pytest.mark.distributed
@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # what instances share
def test_builds_on_two_workers_through_two_instances_and_a_dead_worker(
        cluster: Cluster) -> None:
    from tinymlaas.images import docker_client, ensure_all

    ensure_all(Settings())  # the builder image, current
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    a, b = cluster.start_instance("api-a"), cluster.start_instance("api-b")
    api_a, api_b = a.client(), b.client()
    tflite = get_recipe("hello_world").load(Settings().zoo_dir)
    model = api_a.post("/models", files={"file": ("m.tflite", tflite)},
                       data={"name": "hello_world"}).json()["id"]

    # Two builds submitted on A at once: one on each worker, each seen through B.
    jobs = [build(api_a, model), build(api_a, model)]
    for job_id in jobs:
        wait_for(f"job {job_id}", ended(api_b, job_id))
        assert api_b.get(f"/jobs/{job_id}").json()["state"] == "succeeded"
    ran = {w for w in ("w1", "w2") for j in jobs if f"job {j} (build) attempt 1: running" in cluster.log(w)}
    assert ran == {"w1", "w2"}

    # A worker killed mid-build: its lease runs out and the build is retried on the other worker.
    job_id = build(api_b, model)
    wait_for("a worker to claim the build", lambda: cluster.owner(job_id)[0] is not None, timeout=30)
    work = str((cluster.data / "work").resolve())

    def builders() -> list[str]:  # the list's own labels: a build may end while it is read
        return [c["Id"] for c in docker_client().api.containers(all=True, filters={"label": INPUT_LABEL})
                if str((c.get("Labels") or {}).get(INPUT_LABEL, "")).startswith(work)]
    wait_for("its builder container", lambda: bool(builders()), timeout=60)
    victim = cluster.owner(job_id)[0]
    assert victim is not None and api_a.get(f"/jobs/{job_id}").json()["state"] == "running"
    killed_at = time.monotonic()
    cluster.workers[victim].kill()
    wait_for("the build to be retried", lambda: cluster.owner(job_id)[1] == 2, timeout=LEASE_S * 4)
    retried_after = time.monotonic() - killed_at
    wait_for(f"job {job_id}", ended(api_a, job_id))
    job = api_a.get(f"/jobs/{job_id}").json()
    assert job["state"] == "succeeded", job
    survivor = "w2" if victim == "w1" else "w1"
    assert f"job {job_id} (build) attempt 2: running" in cluster.log(survivor)
    assert retried_after <= LEASE_S * 2 + 1
    # The killed worker's builder container was removed by the process that reaped its build.
    assert builders() == []


@pytest.mark.distributed
@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_build_whose_message_the_broker_lost_is_sent_again(cluster: Cluster, redis_url: str) -> None:
    """Redis restarted without its data while a build waited for a worker: the store still has it
    queued, so after a lease the reaper sends it again and a worker started later builds it."""
    import redis

    from tinymlaas.images import ensure_all

    ensure_all(Settings())
    client = redis.Redis.from_url(redis_url)
    client.flushall()  # the session's broker: no message of an earlier test's dead worker
    api = cluster.start_instance("api-a").client()
    tflite = get_recipe("hello_world").load(Settings().zoo_dir)
    model = api.post("/models", files={"file": ("m.tflite", tflite)},
                     data={"name": "hello_world"}).json()["id"]
    job_id = build(api, model)
    assert client.hlen("tinymlaas:jobs.msgs") == 1
    client.flushall()  # the broker's data is gone; the job is still queued in the store
    wait_for("the lost message to be sent again", lambda: client.hlen("tinymlaas:jobs.msgs") == 1,
             timeout=LEASE_S * 4)
    job = api.get(f"/jobs/{job_id}").json()
    assert job["state"] == "queued" and "the broker lost the message of attempt 1" in job["step"], job
    cluster.start_worker("w1")
    wait_for(f"job {job_id}", ended(api, job_id))
    assert api.get(f"/jobs/{job_id}").json()["state"] == "succeeded"
    assert cluster.owner(job_id) == (None, 1)  # one attempt, run once


@pytest.mark.distributed
@pytest.mark.lwm2m
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_device_on_one_instance_is_read_through_another_and_moves_when_it_dies(
        tmp_path: Path, database_url: str, hello_world: bytes) -> None:
    from _fleet import Firmware, Runtime, make_build

    from tinymlaas.edge.lwm2m.agent import DeviceObject, FirmwareUpdate, TinyMLObject
    from tinymlaas.edge.lwm2m.client import Instance, LwM2MClient
    from tinymlaas.edge.lwm2m.vocab import Dev
    from tinymlaas.net import free_port

    c = Cluster(tmp_path, database_url, broker_url="")

    def instance(name: str) -> BackgroundServer:
        port = free_port()
        settings = c.settings(name)
        settings = settings.model_copy(update={"cluster": ClusterSettings(
            instance=name, api_url=f"http://127.0.0.1:{port}", lease_s=LEASE_S)})
        return BackgroundServer(settings, port=port)

    def boot(version: str) -> tuple[DeviceObject, list[Instance]]:
        """Its objects as it starts: Device, Firmware Update (installs ``b"FW<version>"``), TinyML."""
        device = DeviceObject({0: "TinyMLaaS", 1: "x86-tflm", 2: "sn-1", 3: version, 11: {0: 0}, 16: "U"})
        return device, [device, FirmwareUpdate(Firmware(device), tmp_path / "dev-1"),
                        TinyMLObject(Runtime(hello_world, "x86-tflm", "x86-64"))]

    a, b = instance("api-a"), instance("api-b")
    try:
        api_a, api_b = a.client(), b.client()
        uri_a, uri_b = (api.get("/orchestrator").json()["uri"] for api in (api_a, api_b))

        async def scenario() -> None:
            device = LwM2MClient("dev-1", uri_a, boot("1.0.0")[1], lifetime=60)
            await device.start()
            await asyncio.wait_for(device.registered.wait(), 10)
            await asyncio.sleep(0.5)  # the registry writes what it saw in batches
            detail = await asyncio.to_thread(api_b.get, "/devices/dev-1")  # asked of B, answered by A
            assert detail.status_code == 200 and detail.json()["device"]["online"], detail.text
            assert detail.json()["device"]["lwm2m"] == "1.1"  # live: only the device's own instance has it
            assert detail.json()["capabilities"]["serial"] == "sn-1"  # read from the device now

            # Its results streamed through B, relayed from A as the device runs them.
            def stream_one() -> list[str]:
                with api_b.stream("GET", "/devices/dev-1/results", params={"count": 1}) as reply:
                    assert reply.status_code == 200, reply.read()
                    return [line for line in reply.iter_lines() if line.startswith("data: ")]
            streamed = asyncio.create_task(asyncio.to_thread(stream_one))
            await asyncio.sleep(1.0)  # the stream is open (an observation on the device)
            tinyml = next(o for o in device.instances.values() if isinstance(o, TinyMLObject))
            tinyml.record(b"\x05", b"\x07", 12, None)  # an inference the device ran on its own
            [event] = await asyncio.wait_for(streamed, 30)
            assert json.loads(event[len("data: "):])["output"] == [7]
            await asyncio.to_thread(a.stop)  # instance A dies; the device re-registers with B
            await device.stop(deregister=False)
            rebooted, objects = boot("1.0.0")
            moved = LwM2MClient("dev-1", uri_b, objects, lifetime=60)
            await moved.start()
            await asyncio.wait_for(moved.registered.wait(), 10)
            await asyncio.sleep(0.5)
            again = await asyncio.to_thread(api_b.get, "/devices/dev-1")
            assert again.json()["device"]["online"], again.text
            history = (await asyncio.to_thread(api_b.get, "/devices/dev-1/history")).json()
            joins = [e["detail"] for e in history if "joined" in e.get("detail", "")]
            assert {"joined instance api-a", "joined instance api-b"} <= set(joins), history

            # A FOTA through B still completes on the device that moved there.
            fw = await asyncio.to_thread(make_build, c.store, hello_world, "2.0.0")
            sent = await asyncio.to_thread(api_b.post, "/devices/dev-1/firmware", json={"build": fw.id})
            assert sent.status_code == 202, sent.text
            job_id = sent.json()["job"]["id"]
            await asyncio.to_thread(wait_for, "the FOTA", ended(api_b, job_id), 60)
            job = (await asyncio.to_thread(api_b.get, f"/jobs/{job_id}")).json()
            assert job["state"] == "succeeded", job
            assert rebooted.values[Dev.FIRMWARE_VERSION] == "2.0.0"
            await moved.stop()

        asyncio.run(scenario())
    finally:
        b.stop()
        a.stop()
        c.store.close()
