"""The fleet's telemetry store and its inference arithmetic, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tinymlaas.models_telemetry import DeviceSample
from tinymlaas.store import Store
from tinymlaas.store.telemetry import KEEP, inference_delta


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Store:
    return Store(database_url, tmp_path / "artifacts")


@pytest.mark.parametrize(("before", "now", "fresh", "delta"), [
    (10, 15, False, 5),   # the counter grew
    (10, 3, False, 3),    # it went down: the device restarted and counted 3 since
    (None, 40, False, 0),  # first seen, up since before the last tick: its past is not this hour's
    (None, 40, True, 40),  # first seen, came up since the last tick: all 40 are new
    (7, None, False, 0),  # not read this tick
])
def test_inferences_since_the_last_tick(before: int | None, now: int | None, fresh: bool, delta: int) -> None:
    assert inference_delta(before, now, fresh=fresh) == delta


def test_ticks_record_the_fleet_the_devices_and_inferences_per_hour(store: Store) -> None:
    t0 = datetime(2026, 11, 1, 10, 50, tzinfo=UTC)
    a = DeviceSample(endpoint="a", online=True, fresh=True, board="x86-tflm", firmware_version="1.0.0",
                     inference_count=5, latency_us=40)
    b = DeviceSample(endpoint="b", online=True, fresh=True, board="mps2-an385", inference_count=2,
                     instructions=1735)
    assert store.telemetry.record(t0, [a, b]) == 7
    # 20 minutes on (the next hour): a counted 3 more, b restarted and counted 1, c is offline.
    a2 = a.model_copy(update={"fresh": False, "inference_count": 8, "firmware_version": "2.0.0"})
    b2 = b.model_copy(update={"fresh": False, "inference_count": 1})
    c = DeviceSample(endpoint="c", online=False)
    assert store.telemetry.record(t0 + timedelta(minutes=20), [a2, b2, c]) == 4
    # a is not answering now: its figures stay what they were.
    a3 = DeviceSample(endpoint="a", online=True)
    store.telemetry.record(t0 + timedelta(minutes=21), [a3, b2.model_copy(update={"inference_count": 4})])
    hours = {(i.hour.hour, i.board): i.count for i in store.telemetry.inferences(t0 - timedelta(hours=1))}
    assert hours == {(10, "x86-tflm"): 5, (10, "mps2-an385"): 2, (11, "x86-tflm"): 3, (11, "mps2-an385"): 4}
    devices = {d.endpoint: d for d in store.telemetry.devices()}
    assert devices["a"].firmware_version == "2.0.0" and devices["a"].inference_count == 8
    assert devices["a"].seen_at == t0 + timedelta(minutes=20)
    assert devices["c"].online is False and devices["c"].board is None
    history = store.telemetry.history(t0)
    assert [(p.online, p.offline) for p in history] == [(2, 0), (2, 1), (2, 0)]
    assert store.telemetry.last_tick() == t0 + timedelta(minutes=21)


def test_old_history_is_pruned(store: Store) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    store.telemetry.record(t0, [])
    store.telemetry.record(t0 + KEEP + timedelta(minutes=1), [])
    kept = [p.at for p in store.telemetry.history(t0 - timedelta(days=1))]
    assert kept == [t0 + KEEP + timedelta(minutes=1)]
