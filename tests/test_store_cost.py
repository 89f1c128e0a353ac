"""The CFO's tables on a real SQLite file and a real PostgreSQL database: cloud endpoints and what they
served, device policies and their escalation counts, hybrid evaluations, the profiles a comparison
reads, and what goes when a model or an endpoint goes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tinymlaas.cost.models import HybridEvaluation
from tinymlaas.datasets.models import BoardProfile, Profile, Split
from tinymlaas.errors import NotFound
from tinymlaas.models import JobState, ModelInfo
from tinymlaas.store import Store, now

INFO = ModelInfo(sha256="0" * 64, bytes=3, ops=["FULLY_CONNECTED"], operators=1, inputs=[], outputs=[])


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(database_url, tmp_path / "artifacts")
    yield s
    s.close()


def evaluation(model_id: str, threshold: float, n: int) -> HybridEvaluation:
    return HybridEvaluation(id=f"he{n}", job_id=None, model_id=model_id, dataset_id="d", dataset_version=1,
                            split=Split.test, threshold=threshold, samples=10, escalated=n,
                            escalation_rate=n / 10, accuracy={"local": 0.9, "cloud": 0.95, "hybrid": 0.94},
                            created_at=now())


def test_endpoints_policies_and_counts(store: Store) -> None:
    model = store.add_model("m", b"int8", source="t", info=INFO)
    a = store.cost.add_endpoint(model.id, "float", "f" * 64)
    b = store.cost.add_endpoint(model.id, "int8", model.sha256)
    assert a.model == "m:1" and a.device_model_sha256 == model.sha256 and a.served == 0
    assert {e.id for e in store.cost.endpoints(model.id)} == {a.id, b.id}
    assert store.cost.policies() == []

    p = store.cost.set_policy("dev-1", a.id, 0.8)
    assert (p.cloud, p.threshold, p.escalations) == (a.id, 0.8, 0)
    store.cost.count_escalations({("dev-1", a.id): (1, 100)})
    store.cost.count_escalations({("dev-1", a.id): (1, 300), ("dev-9", b.id): (4, 1000)})  # dev-9: no policy
    assert store.cost.policy("dev-1").escalations == 2
    assert (store.cost.endpoint(a.id).served, store.cost.endpoint(a.id).compute_us) == (2, 400)
    assert store.cost.endpoint(b.id).served == 4
    assert store.cost.set_policy("dev-1", a.id, 0.7).escalations == 2  # the same cloud: counting goes on
    assert store.cost.set_policy("dev-1", b.id, 0.7).escalations == 0  # another one: counted anew
    store.cost.set_policy("dev-2", a.id, 0.9)

    store.cost.delete_endpoint(a.id)  # its policies go with it
    assert [p.device for p in store.cost.policies()] == ["dev-1"]
    with pytest.raises(NotFound, match="no cloud endpoint"):
        store.cost.endpoint(a.id)
    store.cost.drop_policy("dev-1")
    with pytest.raises(NotFound, match="has no hybrid policy"):
        store.cost.drop_policy("dev-1")


def test_evaluations_and_profiles_by_model_and_threshold(store: Store) -> None:
    model = store.add_model("m", b"int8", source="t", info=INFO)
    other = store.add_model("n", b"other", source="t", info=INFO)
    for n, t in enumerate((0.8, 0.9, 0.8)):
        store.cost.add_evaluation(evaluation(model.id, t, n))
    assert [e.id for e in store.cost.evaluations(model.id)] == ["he2", "he1", "he0"]
    assert [e.id for e in store.cost.evaluations(model.id, 0.8, limit=1)] == ["he2"]
    assert store.cost.evaluation("he1").threshold == 0.9 and store.cost.evaluations(other.id) == []

    row = BoardProfile(board="lm3s6965evb", cpu="cortex-m3", clock_hz=50_000_000, fits=True, compiler="aot",
                       flash_total=1, ram_total=1, instructions=5000)
    for model_id in (model.id, other.id):
        job = store.new_job("profile")
        store.update_job(job.id, state=JobState.succeeded, result=Profile(
            model_id=model_id, model_sha256="0" * 64, boards=[row], seconds=1.0).model_dump(mode="json"))
    failed = store.new_job("profile")
    store.update_job(failed.id, state=JobState.failed, error="no")
    profiles = store.cost.profiles(model.id)
    assert len(profiles) == 1 and profiles[0][2].boards[0].instructions == 5000

    store.delete_model(model.id)  # what was measured of a model goes with it
    assert store.cost.evaluations() == [] and store.cost.endpoints() == []
