"""Persistence: one SQLite database file plus a content-addressed artifact directory.

Blobs (models, modules, OS images) live under ``artifacts/sha256/ab/abcdef…``
and are written by rename, so a reader never sees half a file; rows refer to
them by hash. Schema changes are appended to ``MIGRATIONS`` (the database's
``user_version`` says how many ran), never edited in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinymlaas.edge.archive import sha256_file
from tinymlaas.errors import Conflict, InvalidInput, NotFound
from tinymlaas.models import Deployment, Job, JobState, UpdateOutcome

MIGRATIONS: list[str] = [
    """
    CREATE TABLE models (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        source TEXT NOT NULL,
        info TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (name, version),
        UNIQUE (name, sha256)
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        progress REAL NOT NULL DEFAULT 0,
        step TEXT NOT NULL DEFAULT '',
        error TEXT,
        result TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE builds (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs(id),
        model_id TEXT NOT NULL REFERENCES models(id),
        target TEXT NOT NULL,
        compiler TEXT,
        options TEXT NOT NULL,
        builder TEXT NOT NULL,
        version TEXT NOT NULL,
        module TEXT,
        firmware TEXT,
        created_at TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE deployments (
        id TEXT PRIMARY KEY,
        job_id TEXT REFERENCES jobs(id),
        build_id TEXT,
        endpoint TEXT NOT NULL,
        kind TEXT NOT NULL,
        package_sha256 TEXT NOT NULL,
        outcome TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX deployments_endpoint ON deployments (endpoint, created_at);
    """,
]


def now() -> datetime:
    return datetime.now(UTC)


class ArtifactStore:
    """Immutable blobs addressed by their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidInput(f"'{sha256}' is not a SHA-256 hex digest")
        return self.root / "sha256" / sha256[:2] / sha256

    def get(self, sha256: str) -> Path:
        p = self.path(sha256)
        if not p.is_file():
            raise NotFound(f"no artifact {sha256}")
        return p

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        dest = self.path(sha)
        if not dest.exists():
            self._write(dest, lambda fh: fh.write(data))
        return sha

    def put_file(self, src: Path) -> str:
        sha = sha256_file(src)
        dest = self.path(sha)
        if not dest.exists():
            self._write(dest, lambda fh: fh.write(src.read_bytes()))
        return sha

    @staticmethod
    def _write(dest: Path, write: Any) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass(frozen=True)
class ModelRecord:
    id: str
    name: str
    version: int
    sha256: str
    bytes: int
    source: str
    info: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class BuildRecord:
    id: str
    job_id: str
    model_id: str
    target: str
    compiler: str | None
    options: dict[str, Any]
    builder: str
    version: str
    module: dict[str, Any] | None
    firmware: dict[str, Any] | None
    created_at: str


class Store:
    """The service's state. Thread-safe: API handlers and job threads share it."""

    def __init__(self, db_path: Path, artifacts_dir: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db_path = db_path
        self.artifacts = ArtifactStore(artifacts_dir)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self.tx() as db:
            done = db.execute("PRAGMA user_version").fetchone()[0]
            for i, script in enumerate(MIGRATIONS[done:], start=done + 1):
                for stmt in filter(str.strip, script.split(";")):
                    db.execute(stmt)
                db.execute(f"PRAGMA user_version = {i}")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction; rolled back on any error, so a failure stores nothing."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- models -------------------------------------------------------------
    def add_model(self, name: str, data: bytes, *, source: str, info: dict[str, Any]) -> ModelRecord:
        """Register a model version; the same bytes under the same name is the same version."""
        if not name or len(name) > 100 or not all(c.isalnum() or c in "._-" for c in name):
            raise InvalidInput(f"model name '{name}' must be 1-100 letters, digits, '.', '_' or '-'")
        sha = self.artifacts.put_bytes(data)
        with self.tx() as db:
            row = db.execute("SELECT * FROM models WHERE name=? AND sha256=?", (name, sha)).fetchone()
            if row is not None:
                return _model(row)
            version = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name=?",
                                 (name,)).fetchone()[0]
            rec = ModelRecord(uuid.uuid4().hex[:12], name, version, sha, len(data), source, info,
                              now().isoformat())
            db.execute("INSERT INTO models VALUES (?,?,?,?,?,?,?,?)",
                       (rec.id, name, version, sha, rec.bytes, source, json.dumps(info), rec.created_at))
        return rec

    def models(self) -> list[ModelRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM models ORDER BY name, version").fetchall()
        return [_model(r) for r in rows]

    def model(self, ref: str) -> ModelRecord:
        """By id, or by ``name`` (latest version) or ``name:version``."""
        name, _, version = ref.partition(":")
        with self._lock:
            row = self._db.execute("SELECT * FROM models WHERE id=?", (ref,)).fetchone()
            if row is None and version.isdigit():
                row = self._db.execute("SELECT * FROM models WHERE name=? AND version=?",
                                       (name, int(version))).fetchone()
            elif row is None:
                row = self._db.execute("SELECT * FROM models WHERE name=? ORDER BY version DESC",
                                       (ref,)).fetchone()
        if row is None:
            raise NotFound(f"no model '{ref}'")
        return _model(row)

    def delete_model(self, ref: str) -> None:
        rec = self.model(ref)
        with self.tx() as db:
            used = db.execute("SELECT COUNT(*) FROM builds WHERE model_id=?", (rec.id,)).fetchone()[0]
            if used:
                raise Conflict(f"model '{rec.name}:{rec.version}' is used by {used} build(s)")
            db.execute("DELETE FROM models WHERE id=?", (rec.id,))

    # -- jobs ---------------------------------------------------------------
    def new_job(self, kind: str) -> Job:
        t = now()
        job = Job(id=uuid.uuid4().hex[:12], kind=kind, state=JobState.queued, created_at=t, updated_at=t)
        with self.tx() as db:
            db.execute("INSERT INTO jobs (id, kind, state, created_at, updated_at) VALUES (?,?,?,?,?)",
                       (job.id, kind, job.state.value, t.isoformat(), t.isoformat()))
        return job

    def update_job(self, job_id: str, **fields: Any) -> None:
        unknown = set(fields) - {"state", "progress", "step", "error", "result"}
        if unknown:
            raise ValueError(f"jobs have no column(s) {unknown}")
        if "state" in fields:
            fields["state"] = JobState(fields["state"]).value
        if "result" in fields:
            fields["result"] = json.dumps(fields["result"])
        fields["updated_at"] = now().isoformat()
        cols = ", ".join(f"{k}=?" for k in fields)
        with self.tx() as db:
            db.execute(f"UPDATE jobs SET {cols} WHERE id=?", (*fields.values(), job_id))

    def job(self, job_id: str) -> Job:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job '{job_id}'")
        return _job(row)

    def jobs(self, limit: int = 100) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [_job(r) for r in rows]

    def fail_unfinished_jobs(self, reason: str) -> int:
        """Jobs a previous process left queued/running can never finish: say so."""
        with self.tx() as db:
            cur = db.execute(
                "UPDATE jobs SET state='failed', error=?, updated_at=? WHERE state IN ('queued','running')",
                (reason, now().isoformat()),
            )
            return cur.rowcount

    # -- builds -------------------------------------------------------------
    def add_build(self, *, job_id: str, model_id: str, target: str, compiler: str | None,
                  options: dict[str, Any], builder: str, version: str) -> BuildRecord:
        rec = BuildRecord(uuid.uuid4().hex[:12], job_id, model_id, target, compiler, options, builder,
                          version, None, None, now().isoformat())
        with self.tx() as db:
            db.execute("INSERT INTO builds VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (rec.id, job_id, model_id, target, compiler, json.dumps(options), builder, version,
                        None, None, rec.created_at))
        return rec

    def finish_build(self, build_id: str, *, module: dict[str, Any], firmware: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute("UPDATE builds SET module=?, firmware=? WHERE id=?",
                       (json.dumps(module), json.dumps(firmware), build_id))

    def build(self, build_id: str) -> BuildRecord:
        with self._lock:
            row = self._db.execute("SELECT * FROM builds WHERE id=?", (build_id,)).fetchone()
        if row is None:
            raise NotFound(f"no build '{build_id}'")
        return _build(row)

    def builds(self) -> list[BuildRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM builds ORDER BY created_at DESC").fetchall()
        return [_build(r) for r in rows]

    # -- deployments (FOTA/SOTA of one device) --------------------------------
    def add_deployment(self, *, endpoint: str, kind: str, package_sha256: str, job_id: str | None,
                       build_id: str | None) -> Deployment:
        dep_id = uuid.uuid4().hex[:12]
        with self.tx() as db:
            db.execute("INSERT INTO deployments VALUES (?,?,?,?,?,?,?,?)",
                       (dep_id, job_id, build_id, endpoint, kind, package_sha256, None, now().isoformat()))
        return self.deployment(dep_id)

    def finish_deployment(self, dep_id: str, outcome: UpdateOutcome) -> None:
        with self.tx() as db:
            db.execute("UPDATE deployments SET outcome=? WHERE id=?", (outcome.model_dump_json(), dep_id))

    def deployment(self, dep_id: str) -> Deployment:
        with self._lock:
            row = self._db.execute("SELECT * FROM deployments WHERE id=?", (dep_id,)).fetchone()
        if row is None:
            raise NotFound(f"no deployment '{dep_id}'")
        return _deployment(row)

    def deployments(self, endpoint: str | None = None, limit: int = 100) -> list[Deployment]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM deployments WHERE ?1 IS NULL OR endpoint=?1 ORDER BY created_at DESC LIMIT ?2",
                (endpoint, limit)).fetchall()
        return [_deployment(r) for r in rows]


def _deployment(r: sqlite3.Row) -> Deployment:
    outcome = json.loads(r["outcome"]) if r["outcome"] else {}
    outcome = {k: v for k, v in outcome.items() if k not in ("endpoint", "kind", "package_sha256")}
    return Deployment(id=r["id"], job_id=r["job_id"], build_id=r["build_id"], endpoint=r["endpoint"],
                      kind=r["kind"], package_sha256=r["package_sha256"],
                      created_at=datetime.fromisoformat(r["created_at"]), **outcome)


def _model(r: sqlite3.Row) -> ModelRecord:
    return ModelRecord(r["id"], r["name"], r["version"], r["sha256"], r["bytes"], r["source"],
                       json.loads(r["info"]), r["created_at"])


def _job(r: sqlite3.Row) -> Job:
    return Job(id=r["id"], kind=r["kind"], state=JobState(r["state"]), progress=r["progress"],
               step=r["step"], error=r["error"], result=json.loads(r["result"]) if r["result"] else None,
               created_at=datetime.fromisoformat(r["created_at"]),
               updated_at=datetime.fromisoformat(r["updated_at"]))


def _build(r: sqlite3.Row) -> BuildRecord:
    return BuildRecord(r["id"], r["job_id"], r["model_id"], r["target"], r["compiler"],
                       json.loads(r["options"]), r["builder"], r["version"],
                       json.loads(r["module"]) if r["module"] else None,
                       json.loads(r["firmware"]) if r["firmware"] else None, r["created_at"])
