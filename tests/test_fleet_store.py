"""The fleet's tables on a real SQLite file and a real PostgreSQL database: the device registry
(filters, paging, history that outlives a record), groups, rollouts and toolchains."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tinymlaas.errors import Conflict, NotFound
from tinymlaas.fleet.models import (
    DeviceFacts,
    DevicePatch,
    DeviceQuery,
    DeviceSpec,
    GroupSpec,
    Sighting,
    Toolchain,
    wave_sizes,
)
from tinymlaas.models import Deployment, UpdateOutcome
from tinymlaas.store import Store


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(database_url, tmp_path / "artifacts")
    yield s
    s.close()


def _fleet(store: Store) -> None:
    store.devices.add(DeviceSpec(endpoint="cam-1", name="door camera", board="x86-tflm",
                                 tags=["line-a", "cam"], location="hall"))
    store.devices.add(DeviceSpec(endpoint="mcu-1", board="lm3s6965evb", tags=["line-a"]))
    store.devices.add(DeviceSpec(endpoint="mcu-2", board="lm3s6965evb", tags=["line-b"]))


def test_pre_registered_devices_are_expected_until_they_join(store: Store) -> None:
    _fleet(store)
    cam = store.devices.get("cam-1")
    assert (cam.state, cam.online, cam.tags, cam.location) == ("expected", False, ["cam", "line-a"], "hall")
    with pytest.raises(Conflict, match="already registered"):
        store.devices.add(DeviceSpec(endpoint="cam-1"))
    seen = datetime.now(UTC)
    store.devices.apply([Sighting(endpoint="cam-1", online=True, seen_at=seen,
                                  facts=DeviceFacts(board="x86-tflm", firmware_version="1.0.0",
                                                    model_sha256="ab" * 32), events=[("online", "joined")])])
    cam = store.devices.get("cam-1")
    assert (cam.state, cam.online, cam.firmware_version) == ("active", True, "1.0.0")
    assert cam.model_sha256 == "ab" * 32
    assert cam.last_seen == seen and cam.reported is not None and cam.reported.board == "x86-tflm"
    # A sighting of a device nobody registered creates it only when asked to (admission decided).
    store.devices.apply([Sighting(endpoint="ghost", online=True),
                         Sighting(endpoint="new-1", create_as="pending")])
    assert store.devices.find("ghost") is None and store.devices.get("new-1").state == "pending"


def test_filters_and_paging(store: Store) -> None:
    _fleet(store)
    store.devices.apply([Sighting(endpoint="mcu-1", online=True, facts=DeviceFacts(firmware_version="2.0.0",
                                                                                  model_sha256="cd" * 32))])

    def names(**q: object) -> list[str]:
        return [d.endpoint for d in store.devices.query(DeviceQuery.model_validate(q))[0]]

    assert names() == ["cam-1", "mcu-1", "mcu-2"]
    assert names(board="lm3s6965evb") == ["mcu-1", "mcu-2"]
    assert names(tags=["line-a"]) == ["cam-1", "mcu-1"] and names(tags=["line-a", "cam"]) == ["cam-1"]
    assert names(online=True) == ["mcu-1"] and names(online=False) == ["cam-1", "mcu-2"]
    assert names(firmware="2.0.0") == ["mcu-1"] and names(model="cdcd") == ["mcu-1"]
    page, total = store.devices.query(DeviceQuery(limit=2, offset=1))
    assert [d.endpoint for d in page] == ["mcu-1", "mcu-2"] and total == 3


def test_edit_decommission_and_delete_keep_the_history(store: Store) -> None:
    _fleet(store)
    edited = store.devices.patch("mcu-2", DevicePatch(tags=["line-a", "spare"], notes="moved"))
    assert edited.tags == ["line-a", "spare"] and edited.notes == "moved" and edited.board == "lm3s6965evb"
    store.devices.set_state("mcu-2", "decommissioned", "broken fan")
    assert [d.endpoint for d in store.devices.query(DeviceQuery(tags=["line-a"]))[0]] == ["cam-1", "mcu-1"]
    assert store.devices.query(DeviceQuery(state="decommissioned"))[0][0].decommissioned_at is not None
    store.devices.delete("mcu-2")
    with pytest.raises(NotFound):
        store.devices.get("mcu-2")
    assert [e.kind for e in store.devices.events("mcu-2")] == ["deleted", "decommissioned", "edited",
                                                                "registered"]


def test_groups_and_a_rollout_with_its_targets_and_deployments(store: Store) -> None:
    _fleet(store)
    store.rollouts.add_group(GroupSpec(name="line-a", tags=["line-a"]))
    with pytest.raises(Conflict):
        store.rollouts.add_group(GroupSpec(name="line-a", devices=["cam-1"]))
    assert store.rollouts.group("line-a").tags == ["line-a"]
    job = store.new_job("rollout")
    r = store.rollouts.create(rollout_id="r1", name="n", group="line-a", kind="firmware", builds={"b": "x"},
                              sizes=[1, 1], success_threshold=1.0, error_threshold=0.0, manual_approval=False,
                              rollback=True, job_id=job.id, download_base="http://h", created_by="op",
                              targets=[("cam-1", 0, "x86-tflm", "x"), ("mcu-1", 1, "lm3s6965evb", "y")])
    assert [w.counts for w in r.waves] == [{"pending": 1}, {"pending": 1}] and r.state == "running"
    with pytest.raises(Conflict, match="under way"):
        store.rollouts.delete_group("line-a")
    dep = Deployment(id="d1", job_id=job.id, build_id="x", endpoint="cam-1", kind="firmware",
                     package_sha256="0" * 64, created_at=datetime.now(UTC))
    store.rollouts.record({"r1": {"cam-1": {"state": "succeeded", "deployment_id": "d1"}}}, [dep],
                          [("d1", UpdateOutcome(endpoint="cam-1", kind="firmware", package_sha256="0" * 64,
                                                succeeded=True))])
    r = store.rollouts.set("r1", current_wave=1, waive=0)
    assert r.waves[0].state == "done" and r.waves[0].waived and r.current_wave == 1
    assert store.deployment("d1").succeeded is True
    assert [t.state for t in store.rollouts.targets("r1")] == ["succeeded", "pending"]
    assert store.rollouts.unfinished() == ["r1"]


def test_toolchains(store: Store) -> None:
    tc = Toolchain(name="acme", image_id="sha256:" + "1" * 64, reference="acme:1", source="local",
                   boards=["x86-tflm"], self_test=["@selftest {}"], created_at=datetime.now(UTC))
    assert store.toolchains.add(tc) == tc
    with pytest.raises(Conflict):
        store.toolchains.add(tc)
    assert store.toolchains.all() == [tc] and store.toolchains.delete("acme") == tc
    with pytest.raises(NotFound):
        store.toolchains.get("acme")


@pytest.mark.parametrize(("waves", "total", "sizes"), [
    (["1", "10%", "rest"], 100, [1, 10, 89]), (["1", "10%", "40%", "rest"], 1000, [1, 100, 400, 499]),
    (["1", "rest"], 3, [1, 2]), (["5", "rest"], 3, [3]), (["50%", "50%"], 3, [2, 1]), (["rest"], 0, [])])
def test_wave_sizes(waves: list[str], total: int, sizes: list[int]) -> None:
    assert wave_sizes(waves, total) == sizes


def test_endpoints_as_long_as_lwm2m_allows(store: Store) -> None:
    long_urn = "urn:dev:ops:" + "a" * 116  # 128 characters, as an LwM2M server takes them
    store.devices.add(DeviceSpec(endpoint=long_urn, tags=["t"]))
    store.devices.apply([Sighting(endpoint="urn:imei:" + "9" * 119, create_as="active", online=True)])
    assert {d.endpoint for d in store.devices.query(DeviceQuery())[0]} == {long_urn, "urn:imei:" + "9" * 119}
    with pytest.raises(ValueError, match="endpoint"):
        DeviceSpec(endpoint=long_urn + "b")
