"""The store on a real SQLite file: versions, idempotence, atomic failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinymlaas.errors import Conflict, InvalidInput, NotFound
from tinymlaas.models import JobState
from tinymlaas.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "db.sqlite3", tmp_path / "artifacts")
    yield s
    s.close()


def test_model_versions_and_idempotent_upload(store: Store) -> None:
    a = store.add_model("m", b"one", source="t", info={})
    assert store.add_model("m", b"one", source="t", info={}) == a
    b = store.add_model("m", b"two", source="t", info={})
    assert (a.version, b.version) == (1, 2)
    assert store.model("m") == b and store.model("m:1") == a and store.model(a.id) == a
    assert store.artifacts.get(a.sha256).read_bytes() == b"one"
    with pytest.raises(NotFound):
        store.model("m:3")


def test_bad_names_store_nothing(store: Store) -> None:
    with pytest.raises(InvalidInput, match="model name"):
        store.add_model("no spaces", b"x", source="t", info={})
    assert store.models() == []


def test_model_in_use_cannot_be_deleted(store: Store) -> None:
    m = store.add_model("m", b"one", source="t", info={})
    job = store.new_job("build")
    store.add_build(job_id=job.id, model_id=m.id, target="x", compiler=None, options={}, builder="b",
                    version="1")
    with pytest.raises(Conflict, match="used by 1 build"):
        store.delete_model("m")
    assert store.model("m") == m


def test_jobs_survive_reopen_and_stale_jobs_fail(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3", tmp_path / "a")
    job = s.new_job("build")
    s.update_job(job.id, state=JobState.running, step="x", progress=0.5)
    s.close()
    s = Store(tmp_path / "db.sqlite3", tmp_path / "a")
    assert s.job(job.id).progress == 0.5
    assert s.fail_unfinished_jobs("restarted") == 1
    assert s.job(job.id).state == JobState.failed and s.job(job.id).error == "restarted"
    with pytest.raises(ValueError, match="no column"):
        s.update_job(job.id, colour="red")
    s.close()


def test_artifact_hash_is_checked(store: Store) -> None:
    with pytest.raises(InvalidInput, match="SHA-256"):
        store.artifacts.get("../../etc/passwd")
    with pytest.raises(NotFound):
        store.artifacts.get("0" * 64)
