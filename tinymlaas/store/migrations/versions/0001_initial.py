"""The schema the store had before Alembic: models, jobs, builds, deployments.

A database made by the earlier raw-SQLite store (``PRAGMA user_version`` 2) has
exactly these tables; the store stamps it at this revision and upgrades from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tinymlaas.store.tables as t

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("info", t.Json, nullable=False),
        sa.Column("created_at", t.Timestamp(), nullable=False),
        sa.UniqueConstraint("name", "version"),
        sa.UniqueConstraint("name", "sha256"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("step", sa.String, nullable=False, server_default=""),
        sa.Column("error", sa.String),
        sa.Column("result", t.Json),
        sa.Column("created_at", t.Timestamp(), nullable=False),
        sa.Column("updated_at", t.Timestamp(), nullable=False),
    )
    op.create_table(
        "builds",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("model_id", sa.String, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("compiler", sa.String),
        sa.Column("options", t.Json, nullable=False),
        sa.Column("builder", sa.String, nullable=False),
        sa.Column("version", sa.String, nullable=False),
        sa.Column("module", t.Json),
        sa.Column("firmware", t.Json),
        sa.Column("created_at", t.Timestamp(), nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id")),
        sa.Column("build_id", sa.String),
        sa.Column("endpoint", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("package_sha256", sa.String, nullable=False),
        sa.Column("outcome", t.Json),
        sa.Column("created_at", t.Timestamp(), nullable=False),
    )
    op.create_index("deployments_endpoint", "deployments", ["endpoint", "created_at"])


def downgrade() -> None:
    op.drop_index("deployments_endpoint", "deployments")
    for table in ("deployments", "builds", "jobs", "models"):
        op.drop_table(table)
