"""The http-pull orchestrator: the live API (real HTTP, real database file) and the
device's pull agent in process, with the real TFLM runtime and an in-place firmware slot."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from _devices import Device

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.edge.pull import Refused, Seen
from tinymlaas.edge.tflm import Tflm
from tinymlaas.orchestrators.http_pull import HttpPullOrchestrator
from tinymlaas.plugins.registry import orchestrator_plugin
from tinymlaas.signing import Signer
from tinymlaas.store import ArtifactStore

pytestmark = pytest.mark.ota


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[BackgroundServer, httpx.Client]]:
    settings = Settings(data_dir=tmp_path / "service", orchestrator="http-pull", lwm2m={"port": 0},
                        http_pull={"security": "token", "poll_wait_s": 1.0, "offline_after_s": 1.5})
    with BackgroundServer(settings) as server, server.client(timeout=30) as api:
        yield server, api


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def deploy(api: httpx.Client, endpoint: str, artifact: str) -> dict[str, Any]:
    reply = api.post(f"/devices/{endpoint}/firmware", json={"artifact": artifact})
    assert reply.status_code == 202, reply.text
    dep_id = reply.json()["deployment"]["id"]
    return wait_for(lambda: (d := api.get(f"/deployments/{dep_id}").json())["succeeded"] is not None and d)


def test_it_is_a_registered_orchestrator_plugin() -> None:
    assert orchestrator_plugin("http-pull") is HttpPullOrchestrator


def test_a_device_polls_in_is_read_infers_and_takes_firmware(
        service: tuple[BackgroundServer, httpx.Client], hello_world: bytes, tmp_path: Path) -> None:
    server, api = service
    assert api.get("/orchestrator").json()["plugin"] == "http-pull"
    token = api.post("/devices/pull-1/credentials").json()["token"]
    with Device(server.url, "pull-1", token, hello_world, tmp_path) as dev:
        wait_for(dev.agent.connected.is_set)
        listed = api.get("/devices").json()
        assert [(d["endpoint"], d["online"], d["secure"], d["binding"]) for d in listed] == [
            ("pull-1", True, True, "HTTP pull")]
        caps = api.get("/devices/pull-1").json()["capabilities"]
        assert caps["firmware_version"] == "1.0.0" and caps["ram_bytes"] == 65536
        assert caps["model_sha256"] == hashlib.sha256(hello_world).hexdigest() and caps["fota"]

        for code in (-128, 0, 127):  # through the service, the poll and back: TFLM's bytes
            report = api.post("/devices/pull-1/infer", json={"input": [code]}).json()
            oracle = Tflm(hello_world).invoke(np.array([[code]], dtype=np.int8)).ravel().tolist()
            assert report["output"] == oracle and report["latency_us"] == 7, report

        # The results stream: inferences the service asked for and those the device ran on its own.
        events: list[str] = []

        def listen() -> None:
            with api.stream("GET", "/devices/pull-1/results", params={"count": 2}) as r:
                events.extend(line for line in r.iter_lines() if line.startswith("data: "))

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(0.5)  # subscribed
        api.post("/devices/pull-1/infer", json={"input": [-128]})
        dev.loop.call_soon_threadsafe(dev.agent.record, bytes([5]), bytes([9]), 3, 1234)
        listener.join(10)
        outputs = [json.loads(e[6:])["output"] for e in events]
        assert outputs == [Tflm(hello_world).invoke(np.array([[-128]], dtype=np.int8)).ravel().tolist(), [9]]
        assert json.loads(events[1][6:])["instructions"] == 1234

        store = ArtifactStore(server.settings.artifacts_dir)
        good = deploy(api, "pull-1", store.put_bytes(b"FW2.0.0"))
        assert good["succeeded"] and good["result"] == "firmware updated successfully", good
        assert (good["firmware_before"], good["firmware_after"]) == ("1.0.0", "2.0.0")

        bad = b"FW3.0.0"
        sha = hashlib.sha256(bad).hexdigest()
        store.path(sha).parent.mkdir(parents=True, exist_ok=True)
        store.path(sha).write_bytes(b"FW6.6.6")  # the bytes at rest are not what the hash says
        failed = deploy(api, "pull-1", sha)
        assert not failed["succeeded"] and failed["result"] == "integrity check failure", failed
        assert dev.firmware.version == "2.0.0"

        not_firmware = deploy(api, "pull-1", store.put_bytes(b"MZ not for this device"))
        assert not_firmware["result"] == "unsupported package type", not_firmware
    # No poll for longer than offline_after_s: offline, and saying why; no inference.
    wait_for(lambda: not api.get("/devices/pull-1").json()["device"]["online"], timeout=5)
    assert "no poll" in api.get("/devices/pull-1").json()["device"]["offline_reason"]
    reply = api.post("/devices/pull-1/infer", json={"input": [0]})
    assert reply.status_code == 504 and "offline" in reply.json()["detail"]


def test_a_model_with_two_inputs_and_two_outputs_over_the_poll(
        service: tuple[BackgroundServer, httpx.Client], sensor_fusion: bytes, tmp_path: Path) -> None:
    """Every input packed into the poll's one tensor, every output decoded from the device's."""
    from tinymlaas import tflite
    from tinymlaas.edge.tflm import quantize

    server, api = service
    token = api.post("/devices/pull-2/credentials").json()["token"]
    info = tflite.inspect(sensor_fusion)
    with Device(server.url, "pull-2", token, sensor_fusion, tmp_path) as dev:
        wait_for(dev.agent.connected.is_set)
        motion, context = np.linspace(-1, 1, 8), np.array([35.0, 3.0, 0.9])
        report = api.post("/devices/pull-2/infer", json={"inputs": [
            {"name": info.inputs[1].name, "values": context.tolist()},
            {"name": info.inputs[0].name, "values": motion.tolist()}]}).json()
        xs = [quantize(v, t.scale, t.zero_point, np.int8) for v, t in zip((motion, context), info.inputs,
                                                                          strict=True)]
        want = Tflm(sensor_fusion, inputs=2, outputs=2).invoke_all(xs)
        assert [t["raw"] for t in report["inputs"]] == [x.ravel().tolist() for x in xs]
        assert [t["raw"] for t in report["outputs"]] == [w.ravel().tolist() for w in want]
        assert [t["name"] for t in report["outputs"]] == [t.name for t in info.outputs]

        # The same from the command line, each input by its name.
        import subprocess
        import sys

        cli = subprocess.run(
            [sys.executable, "-m", "tinymlaas.cli.main", "devices", "--url", server.url, "--token",
             server.admin_token, "infer", "pull-2", "--json",
             "--values", f"{info.inputs[1].name}={','.join(map(str, context))}",
             "--values", f"{info.inputs[0].name}={','.join(map(str, motion))}"],
            capture_output=True, text=True, timeout=120, check=False)
        assert cli.returncode == 0, cli.stderr
        assert [t["raw"] for t in json.loads(cli.stdout)["outputs"]] == [w.ravel().tolist() for w in want]


def test_devices_without_the_right_token_are_refused(
        service: tuple[BackgroundServer, httpx.Client], hello_world: bytes, tmp_path: Path) -> None:
    server, api = service
    api.post("/devices/pull-2/credentials")
    for endpoint, token in (("pull-2", "not-the-token"), ("pull-2", None), ("stranger", "anything")):
        agent = Device(server.url, endpoint, token, hello_world, tmp_path).agent
        with pytest.raises(Refused, match="HTTP 403"):
            asyncio.run(agent._poll(0.0))
    assert api.get("/devices").json() == []
    token = api.post("/devices/pull-3/credentials").json()["token"]
    reply = api.post("/ota/pull-3/poll", json={"status": {"ram_bytes": "lots"}},
                     headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"].startswith("the poll's status field 'ram_bytes': Input should be a valid")
    assert api.get("/devices").json() == []  # a bad poll records nothing
    assert api.post("/devices/pull-2/credentials").status_code == 409  # shown once; replace=true to renew


def test_revoked_tokens_stop_working(service: tuple[BackgroundServer, httpx.Client], hello_world: bytes,
                                     tmp_path: Path) -> None:
    server, api = service
    token = api.post("/devices/pull-4/credentials").json()["token"]
    agent = Device(server.url, "pull-4", token, hello_world, tmp_path).agent
    asyncio.run(agent._poll(0.0))
    assert [d["endpoint"] for d in api.get("/devices").json()] == ["pull-4"]
    assert api.delete("/devices/pull-4/credentials").status_code == 204
    # Dropped with its credentials: offline, and the registry keeps its record and says why.
    assert [(d["endpoint"], d["online"]) for d in api.get("/devices").json()] == [("pull-4", False)]
    assert api.get("/devices/pull-4/history").json()[0]["detail"] == "credentials revoked"
    with pytest.raises(Refused, match="has no credentials"):
        asyncio.run(agent._poll(0.0))
    assert api.delete("/devices/pull-4/credentials").status_code == 404


def test_the_service_says_how_devices_join(service: tuple[BackgroundServer, httpx.Client]) -> None:
    _, api = service
    info = api.get("/orchestrator").json()
    assert info == {"plugin": "http-pull", "poll": "/ota/{endpoint}/poll", "security": "token",
                    "poll_wait_s": 1.0}
    assert api.get("/lwm2m").json() == info


def test_a_device_remembers_recent_commands_only() -> None:
    seen = Seen(size=3)
    assert [seen.add(c) for c in ("a", "b", "a", "c", "d")] == [True, True, False, True, True]
    assert len(seen) == 3 and seen.add("a")  # the oldest was forgotten: memory stays bounded
    assert not seen.add("d")


def test_a_grant_is_for_its_device_and_ends_with_the_deployment(
        service: tuple[BackgroundServer, httpx.Client], hello_world: bytes, tmp_path: Path) -> None:
    server, api = service
    token = api.post("/devices/pull-g/credentials").json()["token"]
    seen: dict[str, int] = {}

    with Device(server.url, "pull-g", token, hello_world, tmp_path / "dev") as dev:
        wait_for(lambda: api.get("/devices/pull-g").json().get("device", {}).get("online"))
        fetch = dev.agent._fetch

        def spying_fetch(cmd: dict[str, Any], dest: Path, max_bytes: int) -> Path:
            url = cmd["url"]
            seen["anonymous"] = httpx.get(url).status_code  # the URL alone opens nothing
            seen["other device"] = httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code
            seen["this device"] = httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code
            seen["url"] = url  # type: ignore[assignment]
            return fetch(cmd, dest, max_bytes)

        dev.agent._fetch = spying_fetch  # type: ignore[method-assign]
        store = ArtifactStore(server.settings.artifacts_dir)
        assert deploy(api, "pull-g", store.put_bytes(b"FW4.0.0"))["succeeded"]
    assert (seen["anonymous"], seen["other device"], seen["this device"]) == (403, 403, 200)
    after = httpx.get(str(seen["url"]), headers={"Authorization": f"Bearer {token}"})
    assert after.status_code == 403 and "no valid download grant" in after.json()["detail"]


def test_a_device_that_trusts_the_service_takes_only_what_it_signed(
        service: tuple[BackgroundServer, httpx.Client], hello_world: bytes, tmp_path: Path) -> None:
    server, api = service
    creds = api.post("/devices/pull-s/credentials").json()
    trust = base64.b64decode(creds["signing_key"])
    signer = Signer.load_or_create(server.settings.data_dir)
    assert trust == signer.public_key
    with Device(server.url, "pull-s", creds["token"], hello_world, tmp_path, trust=trust) as dev:
        wait_for(lambda: api.get("/devices/pull-s").json().get("device", {}).get("online"))
        store = ArtifactStore(server.settings.artifacts_dir)
        unsigned = deploy(api, "pull-s", store.put_bytes(b"FW6.6.6"))
        assert (unsigned["succeeded"], unsigned["result_code"]) == (False, 5), unsigned
        assert "not signed" in unsigned["detail"] and dev.firmware.version == "1.0.0"
        other_key = Signer.load_or_create(tmp_path / "k")
        forged = deploy(api, "pull-s", store.put_bytes(other_key.sign(b"FW6.6.6")))
        assert (forged["result_code"], dev.firmware.version) == (5, "1.0.0"), forged
        signed = deploy(api, "pull-s", store.put_bytes(signer.sign(b"FW5.0.0")))
        assert signed["succeeded"] and dev.firmware.version == "5.0.0", signed


def test_a_status_older_than_one_taken_is_ignored_until_the_device_restarts(
        service: tuple[BackgroundServer, httpx.Client]) -> None:
    """Two polls of one device can cross (a long poll and a report): the newest status stays."""
    _, api = service
    token = api.post("/devices/pull-5/credentials").json()["token"]

    def poll(boot: str, seq: int, version: str) -> None:
        reply = api.post("/ota/pull-5/poll", headers={"Authorization": f"Bearer {token}"},
                         json={"status": {"firmware_version": version}, "boot": boot, "seq": seq})
        assert reply.status_code == 200, reply.text

    def version() -> str:
        return str(api.get("/devices/pull-5").json()["capabilities"]["firmware_version"])

    poll("a", 5, "new")
    poll("a", 4, "old")  # built before the one above, arrived after it
    assert version() == "new"
    poll("b", 1, "rebooted")  # a new start counts from 1 again
    assert version() == "rebooted"


def test_the_update_that_rebooted_a_device_is_reported_by_the_image_that_survives(tmp_path: Path) -> None:
    """An image on trial keeps the pending update for the image rolled back to, should it die."""
    from tinymlaas.edge.lwm2m.vocab import FwResult
    from tinymlaas.edge.pull import PENDING, PullAgent

    (tmp_path / PENDING).write_text(json.dumps({"id": "c1"}))

    def agent(boot: FwResult | None) -> PullAgent:
        return PullAgent("http://127.0.0.1:9", "d1", device=dict, firmware=None, modules=None,  # type: ignore[arg-type]
                         inference=None, workdir=tmp_path, boot_result=boot)  # type: ignore[arg-type]

    on_trial = agent(None)  # the new image, not confirmed yet: nothing said, nothing forgotten
    assert on_trial._results == [] and (tmp_path / PENDING).is_file()
    rolled_back = agent(FwResult.update_failed)  # it died; the old image says how the update ended
    assert [(r["id"], r["ok"], r["code"]) for r in rolled_back._results] == [("c1", False, 8)]
    assert not (tmp_path / PENDING).exists()
