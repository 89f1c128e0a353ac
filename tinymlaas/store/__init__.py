"""Persistence: a SQL database (one SQLite file by default, PostgreSQL by URL) plus a
content-addressed artifact directory.

The schema is SQLAlchemy 2 (:mod:`.tables`) and changes only through Alembic
revisions (``migrations/versions``), applied when a store opens; a database made
by the earlier raw-SQLite store is recognised and upgraded in place. Every read
returns a typed record of :mod:`tinymlaas.models`; a failing write stores nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from tinymlaas.errors import Conflict, InvalidInput, NotFound
from tinymlaas.models import (
    Build,
    Deployment,
    Job,
    JobState,
    Model,
    ModelInfo,
    StoredFirmware,
    StoredModule,
    UpdateOutcome,
)
from tinymlaas.store.artifacts import ArtifactStore
from tinymlaas.store.cost import Costs
from tinymlaas.store.datasets import Datasets
from tinymlaas.store.devices import Devices
from tinymlaas.store.pipelines import Pipelines
from tinymlaas.store.rollouts import Rollouts
from tinymlaas.store.tables import BuildRow, DeploymentRow, JobRow, ModelRow
from tinymlaas.store.telemetry import Telemetry
from tinymlaas.store.toolchains import Toolchains
from tinymlaas.store.users import Users
from tinymlaas.store.workers import Instances, JobLeases

__all__ = ["ArtifactStore", "Store", "migrate", "now"]

MIGRATIONS = Path(__file__).parent / "migrations"
#: The revision that matches the raw-SQLite store's last schema (PRAGMA user_version 2).
LEGACY_REVISION = "0001"


def now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def make_engine(url: str) -> Engine:
    """An engine for ``sqlite:///FILE`` (WAL, foreign keys, waits for locks) or PostgreSQL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"'{url}' is not a database URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi: Any, _: Any) -> None:
            cur = dbapi.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise InvalidInput(f"database '{parsed.get_backend_name()}' is not supported; "
                           "use sqlite:///FILE or postgresql+psycopg://...")
    return create_engine(parsed, pool_pre_ping=True)


def alembic_config(connection: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (stamping a pre-Alembic database first)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # instances starting together migrate one at a time
            conn.execute(text("SELECT pg_advisory_xact_lock(7361726)"))
        tables = set(inspect(conn).get_table_names())
        cfg = alembic_config(conn)
        if "alembic_version" not in tables and "models" in tables:
            command.stamp(cfg, LEGACY_REVISION)
        command.upgrade(cfg, "head")


class Store:
    """The service's state. Thread-safe: API handlers and job threads share it."""

    def __init__(self, url: str, artifacts_dir: Path) -> None:
        self.url = url
        self.artifacts = ArtifactStore(artifacts_dir)
        self.engine = make_engine(url)
        migrate(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite allows one writer: serialize this process's writes instead of failing on a lock.
        self._write_lock = threading.RLock()
        self.users = Users(self)
        self.datasets = Datasets(self)
        self.telemetry = Telemetry(self)
        self.cost = Costs(self)
        self.devices = Devices(self)
        self.rollouts = Rollouts(self)
        self.toolchains = Toolchains(self)
        self.leases = JobLeases(self)
        self.instances = Instances(self)
        self.pipelines = Pipelines(self)

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """One transaction; rolled back on any error, so a failure stores nothing."""
        with self._write_lock, self._session.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._session() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # -- models -------------------------------------------------------------
    def add_model(self, name: str, data: bytes, *, source: str, info: ModelInfo) -> Model:
        """Register a model version; the same bytes under the same name is the same version."""
        if not name or len(name) > 100 or not all(c.isalnum() or c in "._-" for c in name) \
                or name.strip(".") == "":
            raise InvalidInput(f"model name '{name}' must be 1-100 letters, digits, '.', '_' or '-'")
        sha = self.artifacts.put_bytes(data)
        with self.tx() as db:
            row = db.scalars(select(ModelRow).where(ModelRow.name == name, ModelRow.sha256 == sha)).first()
            if row is None:
                version = (db.scalar(select(func.max(ModelRow.version)).where(ModelRow.name == name))
                           or 0) + 1
                row = ModelRow(id=_new_id(), name=name, version=version, sha256=sha, bytes=len(data),
                               source=source, info=info.model_dump(mode="json"), created_at=now())
                db.add(row)
            return _model(row)

    def models(self) -> list[Model]:
        with self.read() as db:
            return [_model(r) for r in db.scalars(select(ModelRow).order_by(ModelRow.name,
                                                                            ModelRow.version))]

    def model(self, ref: str) -> Model:
        """By id, or by ``name`` (latest version) or ``name:version``."""
        name, _, version = ref.partition(":")
        with self.read() as db:
            row = db.get(ModelRow, ref)
            if row is None and version.isascii() and version.isdigit() and len(version) < 10:  # an int4
                row = db.scalars(select(ModelRow).where(ModelRow.name == name,
                                                        ModelRow.version == int(version))).first()
            elif row is None:
                row = db.scalars(select(ModelRow).where(ModelRow.name == ref)
                                 .order_by(ModelRow.version.desc())).first()
            if row is None:
                raise NotFound(f"no model '{ref}'")
            return _model(row)

    def delete_model(self, ref: str) -> None:
        rec = self.model(ref)
        with self.tx() as db:
            used = db.scalar(select(func.count()).select_from(BuildRow).where(BuildRow.model_id == rec.id))
            if used:
                raise Conflict(f"model '{rec.name}:{rec.version}' is used by {used} build(s)")
            row = db.get(ModelRow, rec.id)
            if row is not None:
                db.delete(row)

    # -- jobs ---------------------------------------------------------------
    def new_job(self, kind: str) -> Job:
        t = now()
        with self.tx() as db:
            row = JobRow(id=_new_id(), kind=kind, state=JobState.queued.value, progress=0.0, step="",
                         created_at=t, updated_at=t)
            db.add(row)
            return _job(row)

    _JOB_FIELDS = frozenset({"state", "progress", "step", "error", "result"})

    def update_job(self, job_id: str, **fields: Any) -> None:
        unknown = set(fields) - self._JOB_FIELDS
        if unknown:
            raise ValueError(f"jobs have no column(s) {unknown}")
        if "state" in fields:
            fields["state"] = JobState(fields["state"]).value
        with self.tx() as db:
            db.execute(update(JobRow).where(JobRow.id == job_id).values(**fields, updated_at=now()))

    def job(self, job_id: str) -> Job:
        with self.read() as db:
            row = db.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job '{job_id}'")
            return _job(row)

    def jobs(self, limit: int = 100, kind: str | None = None) -> list[Job]:
        query = select(JobRow).order_by(JobRow.created_at.desc()).limit(limit)
        if kind is not None:
            query = query.where(JobRow.kind == kind)
        with self.read() as db:
            return [_job(r) for r in db.scalars(query)]

    def unfinished_deployments(self) -> list[Deployment]:
        """Deployments that never got an outcome (the service stopped while they ran)."""
        with self.read() as db:
            return [_deployment(r) for r in db.scalars(select(DeploymentRow)
                                                       .where(DeploymentRow.outcome.is_(None)))]

    # -- builds -------------------------------------------------------------
    def add_build(self, *, job_id: str, model_id: str, target: str, compiler: str | None,
                  options: dict[str, Any], builder: str, version: str) -> Build:
        with self.tx() as db:
            row = BuildRow(id=_new_id(), job_id=job_id, model_id=model_id, target=target,
                           compiler=compiler, options=options, builder=builder, version=version,
                           module=None, firmware=None, created_at=now())
            db.add(row)
            return _build(row)

    def finish_build(self, build_id: str, *, module: StoredModule, firmware: StoredFirmware) -> Build:
        with self.tx() as db:
            row = db.get(BuildRow, build_id)
            if row is None:
                raise NotFound(f"no build '{build_id}'")
            row.module = module.model_dump(mode="json")
            row.firmware = firmware.model_dump(mode="json")
            return _build(row)

    def build(self, build_id: str) -> Build:
        with self.read() as db:
            row = db.get(BuildRow, build_id)
            if row is None:
                raise NotFound(f"no build '{build_id}'")
            return _build(row)

    def builds(self) -> list[Build]:
        with self.read() as db:
            return [_build(r) for r in db.scalars(select(BuildRow).order_by(BuildRow.created_at.desc()))]

    # -- deployments (FOTA/SOTA of one device) --------------------------------
    def add_deployment(self, *, endpoint: str, kind: str, package_sha256: str, job_id: str | None,
                       build_id: str | None) -> Deployment:
        with self.tx() as db:
            row = DeploymentRow(id=_new_id(), job_id=job_id, build_id=build_id, endpoint=endpoint,
                                kind=kind, package_sha256=package_sha256, outcome=None,
                                created_at=now())
            db.add(row)
            return _deployment(row)

    def finish_deployment(self, dep_id: str, outcome: UpdateOutcome) -> None:
        with self.tx() as db:
            db.execute(update(DeploymentRow).where(DeploymentRow.id == dep_id)
                       .values(outcome=outcome.model_dump(mode="json")))

    def deployment(self, dep_id: str) -> Deployment:
        with self.read() as db:
            row = db.get(DeploymentRow, dep_id)
            if row is None:
                raise NotFound(f"no deployment '{dep_id}'")
            return _deployment(row)

    def deployments(self, endpoint: str | None = None, limit: int = 100) -> list[Deployment]:
        query = select(DeploymentRow).order_by(DeploymentRow.created_at.desc()).limit(limit)
        if endpoint is not None:
            query = query.where(DeploymentRow.endpoint == endpoint)
        with self.read() as db:
            return [_deployment(r) for r in db.scalars(query)]


def _model(r: ModelRow) -> Model:
    return Model(id=r.id, name=r.name, version=r.version, sha256=r.sha256, bytes=r.bytes, source=r.source,
                 info=ModelInfo.model_validate(r.info), created_at=r.created_at)


def _job(r: JobRow) -> Job:
    return Job(id=r.id, kind=r.kind, state=JobState(r.state), progress=r.progress, step=r.step,
               error=r.error, result=r.result, created_at=r.created_at, updated_at=r.updated_at)


def _build(r: BuildRow) -> Build:
    return Build(id=r.id, job_id=r.job_id, model_id=r.model_id, target=r.target, compiler=r.compiler,
                 options=r.options, builder=r.builder, version=r.version,
                 module=StoredModule.model_validate(r.module) if r.module else None,
                 firmware=StoredFirmware.model_validate(r.firmware) if r.firmware else None,
                 created_at=r.created_at)


def _deployment(r: DeploymentRow) -> Deployment:
    return Deployment.model_validate({
        **(r.outcome or {}), "id": r.id, "job_id": r.job_id, "build_id": r.build_id, "endpoint": r.endpoint,
        "kind": r.kind, "package_sha256": r.package_sha256, "created_at": r.created_at})
