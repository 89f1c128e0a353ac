"""The database schema as SQLAlchemy 2 tables; Alembic revisions under ``migrations/`` create it.

Rows hold what is queried (names, states, hashes, times) as columns and the rest
(manifests, outcomes) as JSON. The store turns rows into the typed records of
:mod:`tinymlaas.models`; nothing outside the store sees a row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine


class Timestamp(TypeDecorator[datetime]):
    """An aware UTC time: ``timestamptz`` on PostgreSQL, ISO 8601 text on SQLite (which has no
    time type; ISO text sorts in time order and is what the first schema stored)."""

    impl = String(40)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=True))
        return dialect.type_descriptor(String(40))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value if dialect.name == "postgresql" else value.astimezone(UTC).isoformat()

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return when if when.tzinfo else when.replace(tzinfo=UTC)


#: JSON documents: JSONB on PostgreSQL; a Python None is SQL NULL.
Json = JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: Timestamp(), dict[str, Any]: Json}


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version"), UniqueConstraint("name", "sha256"))

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String)
    bytes: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String)
    info: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String)
    state: Mapped[str] = mapped_column(String)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[str] = mapped_column(String, default="")
    error: Mapped[str | None] = mapped_column(String)
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BuildRow(Base):
    __tablename__ = "builds"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    target: Mapped[str] = mapped_column(String)
    compiler: Mapped[str | None] = mapped_column(String)
    options: Mapped[dict[str, Any]]
    builder: Mapped[str] = mapped_column(String)
    version: Mapped[str] = mapped_column(String)
    module: Mapped[dict[str, Any] | None]
    firmware: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]


class DeploymentRow(Base):
    __tablename__ = "deployments"
    __table_args__ = (Index("deployments_endpoint", "endpoint", "created_at"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    build_id: Mapped[str | None] = mapped_column(String)
    endpoint: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String)
    package_sha256: Mapped[str] = mapped_column(String)
    outcome: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
