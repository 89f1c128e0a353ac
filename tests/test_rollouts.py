"""The device registry, groups and rollouts on the live service (real HTTP, real UDP, a real
database) with simulated LwM2M devices in process: waves, thresholds, pause and resume,
approval, rollback, emergency stop, refusals before anything is sent, and a restart of the
service in the middle of a rollout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _fleet import Fleet, bridged, make_build, wait_until

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.models import Build
from tinymlaas.net import free_port
from tinymlaas.store import Store

pytestmark = pytest.mark.lwm2m


class Lab:
    """A service with its own database, its store opened alongside, and a fleet of simulated devices."""

    def __init__(self, tmp: Path, database_url: str, model: bytes, **devices: Any) -> None:
        self.settings = Settings(data_dir=tmp / "service", database_url=database_url,
                                 lwm2m={"port": 0, "ack_timeout_s": 0.5, "update_timeout_s": 20,
                                        "download_timeout_s": 20},
                                 devices={"flush_s": 0.05, **devices})
        self.model = model
        self.port = free_port()
        self.start()
        uri = self.api.get("/orchestrator").json()["uri"]
        # A restarted service answers where it did: the ports it got the first time.
        self.settings = self.settings.model_copy(update={"lwm2m": self.settings.lwm2m.model_copy(
            update={"port": int(uri.rsplit(":", 1)[1])})})
        self.store = Store(self.settings.db_url, self.settings.artifacts_dir)
        self.fleet = Fleet(uri, tmp / "devices", model)

    def start(self) -> None:
        self.server = BackgroundServer(self.settings, port=self.port)
        self.api = self.server.client(timeout=30)

    def stop(self) -> None:
        self.api.close()
        self.server.stop()

    def build(self, version: str, target: str = "x86-tflm") -> Build:
        return make_build(self.store, self.model, version, target)

    def wait(self, check: Callable[[], Any], timeout: float = 30, what: str = "it") -> Any:
        return wait_until(check, timeout, what, every=0.05)

    def online(self, *endpoints: str) -> None:
        def all_in() -> bool:
            listed = {d["endpoint"]: d for d in self.api.get("/devices", params={"online": True}).json()}
            return all(ep in listed and listed[ep]["firmware_version"] for ep in endpoints)

        self.wait(all_in, what=f"{endpoints} online with what they run")

    def rollout(self, **spec: Any) -> dict[str, Any]:
        reply = self.api.post("/rollouts", json=spec)
        assert reply.status_code == 201, reply.text
        return dict(reply.json())

    def until(self, rid: str, *states: str, timeout: float = 60) -> dict[str, Any]:
        try:
            return dict(self.wait(lambda: (r := self.api.get(f"/rollouts/{rid}").json())["state"] in states
                                  and r, timeout, f"rollout {rid} reaching {states}"))
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.api.get(f'/rollouts/{rid}').json()}; "
                                 f"{self.api.get(f'/rollouts/{rid}/devices').json()}") from None

    def targets(self, rid: str) -> dict[str, str]:
        return {t["endpoint"]: t["state"] for t in self.api.get(f"/rollouts/{rid}/devices").json()}

    def close(self) -> None:
        self.fleet.close()
        self.store.close()
        self.stop()


@pytest.fixture
def lab(tmp_path: Path, hello_world: bytes) -> Iterator[Lab]:
    lab = Lab(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", hello_world)
    yield lab
    lab.close()


def fleet_of(lab: Lab, n: int, tags: list[str], **special: dict[str, Any]) -> list[str]:
    """Pre-register ``n`` devices and bring them up (``special``: endpoint -> firmware quirks)."""
    names = [f"sim-{i}" for i in range(n)]
    for ep in names:
        reply = lab.api.post("/devices", json={"endpoint": ep, "board": "x86-tflm", "tags": tags})
        assert reply.status_code == 201, reply.text
        assert reply.json()["device"]["state"] == "expected" and reply.json()["credentials"] is None
    for ep in names:
        lab.fleet.add(ep, **special.get(ep, {}))
    lab.online(*names)
    return names


def test_a_rollout_in_waves_updates_the_group_and_the_registry_follows(database_url: str, tmp_path: Path,
                                                                      hello_world: bytes) -> None:
    lab = Lab(tmp_path, database_url, hello_world)
    try:
        names = fleet_of(lab, 5, ["line-a"])
        lab.fleet.add("other")  # joins unannounced: accepted and recorded (devices.unknown = accept)
        lab.online("other")
        listed = lab.api.get("/devices", params={"tags": "line-a", "limit": 2})
        assert [d["endpoint"] for d in listed.json()] == ["sim-0", "sim-1"]
        assert listed.headers["x-total-count"] == "5"
        dev = lab.api.get("/devices/sim-0").json()
        assert dev["device"]["state"] == "active" and dev["device"]["reported"]["board"] == "x86-tflm"
        assert dev["device"]["lwm2m"] == "1.1" and dev["capabilities"]["cpu"] == "x86-64"
        assert lab.api.get("/devices/other").json()["device"]["tags"] == []
        v1, v2 = lab.build("1.0.0"), lab.build("2.0.0")
        assert lab.api.post("/groups", json={"name": "line-a", "tags": ["line-a"]}).status_code == 201
        assert [d["endpoint"] for d in lab.api.get("/groups/line-a/devices").json()] == names

        rollout = lab.rollout(group="line-a", builds=[v2.id], waves=["1", "2", "rest"])
        assert [w["size"] for w in rollout["waves"]] == [1, 2, 2] and rollout["builds"] == {"x86-tflm": v2.id}
        events = []
        with lab.api.stream("GET", f"/rollouts/{rollout['id']}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
        done = lab.until(rollout["id"], "succeeded")
        assert events[0] == "rollout" and events[-1] == "rollout" and "device" in events
        assert [w["counts"] for w in done["waves"]] == [{"succeeded": 1}, {"succeeded": 2}, {"succeeded": 2}]
        assert all(lab.fleet.version(ep) == "2.0.0" for ep in names) and lab.fleet.version("other") == "1.0.0"
        job = lab.api.get(f"/jobs/{done['job_id']}").json()
        assert job["state"] == "succeeded" and job["progress"] == 1.0
        deps = [d for d in lab.api.get("/deployments").json() if d["job_id"] == done["job_id"]]
        assert sorted(d["endpoint"] for d in deps) == names and all(d["succeeded"] for d in deps)
        lab.wait(lambda: [d["endpoint"] for d in lab.api.get("/devices", params={"firmware": "2.0.0"}).json()]
                 == names, what="the registry knowing the new firmware")
        assert lab.api.get("/devices/sim-3").json()["device"]["build_id"] == v2.id
        assert v1.id != v2.id
    finally:
        lab.close()


def test_a_failing_canary_pauses_and_the_rest_keep_their_version_until_resumed(lab: Lab) -> None:
    names = fleet_of(lab, 4, ["line-a"], **{"sim-0": {"refuse": True}})
    lab.build("1.0.0")
    v2 = lab.build("2.0.0")
    lab.api.post("/groups", json={"name": "all", "devices": names})
    rollout = lab.rollout(group="all", builds=[v2.id], waves=["1", "rest"])
    paused = lab.until(rollout["id"], "paused")
    assert "wave 1: 1 of 1 devices failed (100%), above the error threshold of 5%" in paused["reason"]
    time.sleep(0.5)  # nothing more happens while it is paused
    assert lab.targets(rollout["id"]) == {"sim-0": "failed", "sim-1": "pending", "sim-2": "pending",
                                          "sim-3": "pending"}
    assert [lab.fleet.version(ep) for ep in names] == ["1.0.0"] * 4
    target = lab.api.get(f"/rollouts/{rollout['id']}/devices", params={"state": "failed"}).json()[0]
    assert "unsupported package type" in target["detail"]
    assert "still runs what it ran before" in target["detail"]
    job = lab.api.get(f"/jobs/{rollout['job_id']}").json()
    assert job["state"] == "running" and job["step"].startswith("paused: wave 1")

    assert lab.api.post(f"/rollouts/{rollout['id']}/approve").status_code == 409  # not waiting for one
    resumed = lab.api.post(f"/rollouts/{rollout['id']}/resume", json={"reason": "canary checked by hand"})
    assert resumed.json()["current_wave"] == 1 and resumed.json()["waves"][0]["waived"]
    done = lab.until(rollout["id"], "succeeded")
    assert done["reason"] == "every wave done; 1 device(s) failed"
    assert [lab.fleet.version(ep) for ep in names] == ["1.0.0", "2.0.0", "2.0.0", "2.0.0"]


@pytest.mark.slow
def test_a_failed_device_is_put_back_on_its_previous_build(lab: Lab) -> None:
    names = fleet_of(lab, 3, ["line-a"], **{"sim-1": {"broken": True}})
    v1, v2 = lab.build("1.0.0"), lab.build("2.0.0")
    lab.api.post("/groups", json={"name": "g", "tags": ["line-a"]})
    rollout = lab.rollout(group="g", builds=[v2.id], waves=["rest"], error_threshold=1.0,
                          success_threshold=0.0)
    done = lab.until(rollout["id"], "succeeded")
    (back,) = lab.api.get(f"/rollouts/{rollout['id']}/devices", params={"state": "rolled_back"}).json()
    assert back["endpoint"] == "sim-1" and back["previous_build_id"] == v1.id, back
    assert back["rollback_deployment_id"]
    assert back["detail"] == ("the device did not take the firmware: firmware update failed; "
                              f"back on build {v1.id}")
    assert [lab.fleet.version(ep) for ep in names] == ["2.0.0", "1.0.0", "2.0.0"]
    assert done["waves"][0]["counts"] == {"succeeded": 2, "rolled_back": 1}
    rollback = lab.api.get(f"/deployments/{back['rollback_deployment_id']}").json()
    assert rollback["build_id"] == v1.id and rollback["succeeded"] and rollback["firmware_after"] == "1.0.0"


@pytest.mark.slow
def test_manual_approval_and_a_restart_of_the_service_in_the_middle(database_url: str, tmp_path: Path,
                                                                   hello_world: bytes) -> None:
    lab = Lab(tmp_path, database_url, hello_world)
    try:
        names = fleet_of(lab, 3, ["line-a"], **{"sim-2": {"slow_s": 3.0}})
        v2 = lab.build("2.0.0")
        lab.api.post("/groups", json={"name": "g", "tags": ["line-a"]})
        rollout = lab.rollout(group="g", builds=[v2.id], waves=["1", "1", "rest"], manual_approval=True)
        waiting = lab.until(rollout["id"], "waiting_approval")
        assert waiting["reason"] == "wave 1 done: wave 2 waits for an approval"
        lab.stop()  # the service goes away while the rollout waits ...
        lab.start()  # ... and comes back: the rollout is where it was
        assert lab.api.get(f"/rollouts/{rollout['id']}").json()["state"] == "waiting_approval"
        assert lab.api.get(f"/jobs/{rollout['job_id']}").json()["state"] == "running"
        lab.online(*names)
        assert lab.api.post(f"/rollouts/{rollout['id']}/approve").json()["current_wave"] == 1
        lab.until(rollout["id"], "waiting_approval")
        lab.api.post(f"/rollouts/{rollout['id']}/approve")
        lab.wait(lambda: lab.targets(rollout["id"])["sim-2"] == "running", what="the slow device starting")
        lab.stop()  # ... and again, with a device's update under way
        lab.start()
        lab.online(*names)
        done = lab.until(rollout["id"], "succeeded")
        assert [w["counts"] for w in done["waves"]] == [{"succeeded": 1}] * 3
        assert [lab.fleet.version(ep) for ep in names] == ["2.0.0"] * 3
        assert lab.api.get(f"/jobs/{rollout['job_id']}").json()["state"] == "succeeded"
    finally:
        lab.close()


@pytest.mark.slow
def test_cancel_and_emergency_stop(lab: Lab) -> None:
    fleet_of(lab, 4, ["line-a"], **{f"sim-{i}": {"slow_s": 5.0} for i in range(4)})
    v2 = lab.build("2.0.0")
    lab.api.post("/groups", json={"name": "g", "tags": ["line-a"]})
    first = lab.rollout(group="g", builds=[v2.id], waves=["1", "rest"])
    lab.wait(lambda: lab.targets(first["id"])["sim-0"] == "running", what="the canary starting")
    stopped = lab.api.post(f"/rollouts/{first['id']}/stop", json={"reason": "wrong build"}).json()
    assert stopped["state"] == "stopped" and stopped["reason"] == "wrong build"
    assert lab.targets(first["id"]) == {"sim-0": "stopped", "sim-1": "cancelled", "sim-2": "cancelled",
                                        "sim-3": "cancelled"}
    job = lab.wait(lambda: (j := lab.api.get(f"/jobs/{first['job_id']}").json())["state"] == "failed" and j)
    assert job["error"] == "rollout stopped: wrong build"
    assert lab.api.post(f"/rollouts/{first['id']}/resume").status_code == 409

    # (sim-0 is still installing what the stopped rollout sent it: the device finishes on its own.)
    lab.api.post("/groups", json={"name": "rest", "devices": ["sim-1", "sim-2", "sim-3"]})
    second = lab.rollout(group="rest", builds=[v2.id], waves=["1", "rest"])
    lab.wait(lambda: lab.targets(second["id"])["sim-1"] == "running", what="the canary starting")
    cancelled = lab.api.post(f"/rollouts/{second['id']}/cancel").json()
    assert cancelled["state"] == "cancelled"
    lab.wait(lambda: lab.targets(second["id"])["sim-1"] == "succeeded", 30, "the update under way finishing")
    assert lab.targets(second["id"]) == {"sim-1": "succeeded", "sim-2": "cancelled", "sim-3": "cancelled"}
    assert lab.fleet.version("sim-1") == "2.0.0" and lab.fleet.version("sim-2") == "1.0.0"


def test_refused_before_anything_is_sent(lab: Lab) -> None:
    fleet_of(lab, 2, ["line-a"])
    mcu = lab.build("2.0.0", target="lm3s6965evb")
    x86 = lab.build("2.0.0")
    lab.api.post("/groups", json={"name": "g", "tags": ["line-a"]})
    jobs = len(lab.api.get("/jobs").json())

    def refused(reply: httpx.Response, status: int, *words: str) -> None:
        assert reply.status_code == status, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
        assert all(w in reply.json()["detail"] for w in words), reply.json()["detail"]

    refused(lab.api.post("/devices/sim-0/firmware", json={"build": mcu.id}), 422,
            f"build '{mcu.id}' is for board 'lm3s6965evb' but device 'sim-0' reports board 'x86-tflm'",
            "is for CPU 'cortex-m3' but device 'sim-0' reports CPU 'x86-64'")
    refused(lab.api.post("/rollouts", json={"group": "g", "builds": [mcu.id]}), 422,
            "device 'sim-0' is board 'x86-tflm', and no build is (builds are for lm3s6965evb)")
    refused(lab.api.post("/rollouts", json={"group": "g", "builds": [x86.id, x86.id]}), 422,
            "are both for board 'x86-tflm'")
    refused(lab.api.post("/rollouts", json={"group": "nope", "builds": [x86.id]}), 404, "no group 'nope'")
    refused(lab.api.post("/rollouts", json={"group": "g", "builds": [x86.id], "waves": ["1", "rest", "2"]}),
            422, "wave 'rest'")
    refused(lab.api.post("/rollouts", json={"group": "g", "builds": [x86.id], "colour": "red"}), 422,
            "colour")
    refused(lab.api.post("/groups", json={"name": "bad", "tags": ["a"], "devices": ["sim-0"]}), 422,
            "a query ('tags' and/or 'board') or an explicit 'devices' list")
    refused(lab.api.post("/devices", json={"endpoint": "sim-0"}), 409, "already registered")
    refused(lab.api.post("/devices", json={"endpoint": "x", "board": "pdp-11"}), 422, "board 'pdp-11'")
    refused(lab.api.get("/devices", params={"colour": "red"}), 422, "colour")
    assert len(lab.api.get("/jobs").json()) == jobs  # no job started


@pytest.mark.slow
def test_unknown_devices_are_held_for_approval_and_decommissioned_ones_kept_out(tmp_path: Path,
                                                                             hello_world: bytes) -> None:
    lab = Lab(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", hello_world, unknown="hold")
    try:
        lab.fleet.add("stranger")
        held = lab.wait(lambda: [d for d in lab.api.get("/devices", params={"state": "pending"}).json()],
                        what="the stranger being held")
        assert held[0]["endpoint"] == "stranger" and not held[0]["online"]
        assert "waits for an operator's approval" in lab.fleet.clients["stranger"].last_error
        assert lab.api.post("/devices/stranger/approve").json()["state"] == "active"
        lab.online("stranger")
        decommissioned = lab.api.post("/devices/stranger/decommission", json={"reason": "stolen"}).json()
        assert decommissioned["state"] == "decommissioned" and not decommissioned["online"]
        # At its next registration update it finds itself forgotten, tries to come back, and is refused.
        lab.wait(lambda: "is decommissioned" in (lab.fleet.clients["stranger"].last_error or ""), 20,
                 "the decommissioned device being refused")
        assert lab.api.get("/devices").json() == []  # out of service: not in the list ...
        kept = lab.api.get("/devices", params={"include_decommissioned": True}).json()
        assert [d["endpoint"] for d in kept] == ["stranger"]  # ... but kept, with its history
        history = [(e["kind"], e["detail"]) for e in lab.api.get("/devices/stranger/history").json()]
        assert ("decommissioned", "stolen") in history and ("pending", "approved") not in history
        assert ("active", "approved") in history and ("offline", "decommissioned") in history
        lab.fleet.run(lab.fleet.clients.pop("stranger").stop())  # (or it would be held again at once)
        assert lab.api.delete("/devices/stranger").status_code == 204
        assert lab.api.get("/devices/stranger").status_code == 404
        assert lab.api.get("/devices/stranger/history").json()[0]["kind"] == "deleted"
    finally:
        lab.close()


def test_a_bridge_lists_its_boards_and_removing_it_removes_them(lab: Lab) -> None:
    lab.api.post("/bridges", json={"endpoint": "bridge-1", "location": "rack 3"})
    for ep in ("mcu-a", "mcu-b"):
        lab.fleet.add(ep, board="lm3s6965evb", cpu="cortex-m3")
    lab.fleet.add("bridge-1", extra=lambda: bridged({"mcu-a": "lm3s6965evb", "mcu-b": "lm3s6965evb"}))
    lab.online("mcu-a", "mcu-b")

    def bridge() -> dict[str, Any]:
        return dict(lab.api.get("/bridges/bridge-1").json())

    found = lab.wait(lambda: len((b := bridge())["devices"]) == 2 and b, what="the bridge's boards")
    assert found["online"] and found["location"] == "rack 3"
    assert [(d["endpoint"], d["health"], d["online"]) for d in found["devices"]] == [
        ("mcu-a", "running", True), ("mcu-b", "running", True)]
    assert [d["endpoint"] for d in lab.api.get("/devices").json()] == ["mcu-a", "mcu-b"]  # not the bridge
    assert [b["endpoint"] for b in lab.api.get("/bridges").json()] == ["bridge-1"]
    removed = lab.api.delete("/bridges/bridge-1").json()
    assert [(d["endpoint"], d["state"], d["online"]) for d in removed["devices"]] == [
        ("mcu-a", "decommissioned", False), ("mcu-b", "decommissioned", False)]
    assert lab.api.get("/bridges").json() == [] and lab.api.get("/devices").json() == []
    assert lab.api.get("/devices/mcu-a/history").json()[0]["detail"] == "its bridge 'bridge-1' was removed"


@pytest.mark.slow
def test_server_sent_events_follow_a_rollout(lab: Lab) -> None:
    fleet_of(lab, 2, ["t"], **{"sim-0": {"slow_s": 1.0}, "sim-1": {"slow_s": 1.0}})
    v2 = lab.build("2.0.0")
    lab.api.post("/groups", json={"name": "g", "tags": ["t"]})
    rollout = lab.rollout(group="g", builds=[v2.id], waves=["1", "rest"])
    seen: list[tuple[str, dict[str, Any]]] = []

    def follow() -> None:
        with lab.api.stream("GET", f"/rollouts/{rollout['id']}/events") as stream:
            kind = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    seen.append((kind, json.loads(line[6:])))

    reader = threading.Thread(target=follow)
    reader.start()
    reader.join(60)
    devices = [(d["endpoint"], d["state"]) for k, d in seen if k == "device"]
    # (sim-0 may have started before the stream did: its first event is the rollout as it stood)
    assert seen[0][0] == "rollout" and ("sim-1", "running") in devices and ("sim-1", "succeeded") in devices
    assert devices.index(("sim-0", "succeeded")) < devices.index(("sim-1", "running"))  # waves in order
    assert seen[-1][0] == "rollout" and seen[-1][1]["state"] == "succeeded"
