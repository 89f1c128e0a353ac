"""The store on a real SQLite file and a real PostgreSQL database: versions, idempotence,
atomic failures, migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from tinymlaas.errors import Conflict, InvalidInput, NotFound
from tinymlaas.models import JobState, ModelInfo
from tinymlaas.store import Store

INFO = ModelInfo(sha256="0" * 64, bytes=3, ops=["FULLY_CONNECTED"], operators=1, inputs=[], outputs=[])


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(database_url, tmp_path / "artifacts")
    yield s
    s.close()


def test_model_versions_and_idempotent_upload(store: Store) -> None:
    a = store.add_model("m", b"one", source="t", info=INFO)
    assert store.add_model("m", b"one", source="t", info=INFO) == a
    b = store.add_model("m", b"two", source="t", info=INFO)
    assert (a.version, b.version) == (1, 2)
    assert store.model("m") == b and store.model("m:1") == a and store.model(a.id) == a
    assert store.model("m").info.ops == ["FULLY_CONNECTED"]
    assert store.artifacts.get(a.sha256).read_bytes() == b"one"
    with pytest.raises(NotFound):
        store.model("m:3")


def test_bad_names_store_nothing(store: Store) -> None:
    for name in ("no spaces", "..", "", "a/b"):
        with pytest.raises(InvalidInput, match="model name"):
            store.add_model(name, b"x", source="t", info=INFO)
    assert store.models() == []


def test_model_in_use_cannot_be_deleted(store: Store) -> None:
    m = store.add_model("m", b"one", source="t", info=INFO)
    job = store.new_job("build")
    store.add_build(job_id=job.id, model_id=m.id, target="x", compiler=None, options={}, builder="b",
                    version="1")
    with pytest.raises(Conflict, match="used by 1 build"):
        store.delete_model("m")
    assert store.model("m") == m


def test_jobs_survive_reopen_and_stale_jobs_fail(database_url: str, tmp_path: Path) -> None:
    s = Store(database_url, tmp_path / "a")
    job = s.new_job("build")
    s.update_job(job.id, state=JobState.running, step="x", progress=0.5)
    s.close()
    s = Store(database_url, tmp_path / "a")
    assert s.job(job.id).progress == 0.5
    assert s.job(job.id).created_at.tzinfo is not None
    assert s.leases.fail_local(None, "restarted") == 1
    assert s.job(job.id).state == JobState.failed and s.job(job.id).error == "restarted"
    with pytest.raises(ValueError, match="no column"):
        s.update_job(job.id, colour="red")
    s.close()


def test_job_results_and_order(store: Store) -> None:
    first = store.new_job("a")
    second = store.new_job("b")
    store.update_job(first.id, state=JobState.succeeded, result={"nested": {"n": [1, 2]}})
    assert store.job(first.id).result == {"nested": {"n": [1, 2]}}
    assert store.job(second.id).result is None
    assert [j.id for j in store.jobs()] == [second.id, first.id]


def test_artifact_hash_is_checked(store: Store) -> None:
    with pytest.raises(InvalidInput, match="SHA-256"):
        store.artifacts.get("../../etc/passwd")
    with pytest.raises(NotFound):
        store.artifacts.get("0" * 64)


def test_unknown_database_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not supported"):
        Store("mysql://localhost/x", tmp_path)
    with pytest.raises(InvalidInput, match="not a database URL"):
        Store("not a url", tmp_path)


# The raw-SQLite store's schema (PRAGMA user_version 2), as it was created before Alembic.
LEGACY = [
    """CREATE TABLE models (id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL,
       sha256 TEXT NOT NULL, bytes INTEGER NOT NULL, source TEXT NOT NULL, info TEXT NOT NULL,
       created_at TEXT NOT NULL, UNIQUE (name, version), UNIQUE (name, sha256))""",
    """CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL,
       progress REAL NOT NULL DEFAULT 0, step TEXT NOT NULL DEFAULT '', error TEXT, result TEXT,
       created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE builds (id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(id),
       model_id TEXT NOT NULL REFERENCES models(id), target TEXT NOT NULL, compiler TEXT,
       options TEXT NOT NULL, builder TEXT NOT NULL, version TEXT NOT NULL, module TEXT, firmware TEXT,
       created_at TEXT NOT NULL)""",
    """CREATE TABLE deployments (id TEXT PRIMARY KEY, job_id TEXT REFERENCES jobs(id), build_id TEXT,
       endpoint TEXT NOT NULL, kind TEXT NOT NULL, package_sha256 TEXT NOT NULL, outcome TEXT,
       created_at TEXT NOT NULL)""",
    "CREATE INDEX deployments_endpoint ON deployments (endpoint, created_at)",
]


def test_a_database_of_the_raw_sqlite_store_is_migrated_not_recreated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for stmt in LEGACY:
        db.execute(stmt)
    t = "2026-11-20T10:00:00.123456+00:00"
    db.execute("INSERT INTO models VALUES (?,?,?,?,?,?,?,?)",
               ("m1", "hw", 1, "a" * 64, 3, "zoo:hello_world", INFO.model_dump_json(), t))
    db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?)",
               ("j1", "build", "succeeded", 1.0, "done", None, '{"build_id": "b1"}', t, t))
    db.execute("INSERT INTO builds VALUES (?,?,?,?,?,?,?,?,?,?,?)",
               ("b1", "j1", "m1", "x86-tflm", None, "{}", "docker", "1.0.0", None, None, t))
    db.execute("INSERT INTO deployments VALUES (?,?,?,?,?,?,?,?)",
               ("d1", "j1", "b1", "dev-1", "firmware", "b" * 64,
                '{"succeeded": true, "result_code": 1, "result": "firmware updated successfully"}', t))
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()

    s = Store(f"sqlite:///{path}", tmp_path / "a")
    assert "alembic_version" in inspect(s.engine).get_table_names()
    model = s.model("hw")
    assert (model.id, model.version, model.info.ops) == ("m1", 1, ["FULLY_CONNECTED"])
    assert model.created_at.isoformat() == t
    assert s.job("j1").result == {"build_id": "b1"}
    assert s.build("b1").target == "x86-tflm" and s.build("b1").firmware is None
    dep = s.deployment("d1")
    assert dep.succeeded and dep.result_code == 1 and dep.endpoint == "dev-1"
    # And it keeps working: a new version next to the old one.
    assert s.add_model("hw", b"new", source="t", info=INFO).version == 2
    s.close()
