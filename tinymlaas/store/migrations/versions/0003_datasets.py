"""Datasets with copy-on-write sample versions; training runs, model lineage, evaluations.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tinymlaas.store.tables as t

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("name", sa.String, nullable=False, unique=True),
        sa.Column("task", sa.String, nullable=False),
        sa.Column("spec", t.Json, nullable=False),
        sa.Column("split", t.Json, nullable=False),
        sa.Column("description", sa.String, nullable=False, server_default=""),
        sa.Column("head", sa.Integer, nullable=False),
        sa.Column("created_at", t.Timestamp(), nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("dataset_id", sa.String, sa.ForeignKey("datasets.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("created_at", t.Timestamp(), nullable=False),
        sa.Column("locked_at", t.Timestamp()),
    )
    op.create_table(
        "dataset_samples",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("key", sa.String, nullable=False),
        sa.Column("dataset_id", sa.String, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String),
        sa.Column("split", sa.String, nullable=False),
        sa.Column("sha256", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("added_in", sa.Integer, nullable=False),
        sa.Column("removed_in", sa.Integer),
        sa.Column("created_at", t.Timestamp(), nullable=False),
    )
    op.create_index("dataset_samples_live", "dataset_samples", ["dataset_id", "added_in", "removed_in"])
    op.create_index("dataset_samples_key", "dataset_samples", ["dataset_id", "key"])
    op.create_table(
        "trainings",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("dataset_id", sa.String, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("dataset_version", sa.Integer, nullable=False),
        sa.Column("settings", t.Json, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("epochs", t.Json, nullable=False),
        sa.Column("model_id", sa.String),
        sa.Column("error", sa.String),
        sa.Column("seconds", sa.Float),
        sa.Column("created_at", t.Timestamp(), nullable=False),
    )
    op.create_table(
        "model_lineage",
        sa.Column("model_id", sa.String, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("dataset_id", sa.String, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("dataset_version", sa.Integer, nullable=False),
        sa.Column("record", t.Json, nullable=False),
        sa.Column("created_at", t.Timestamp(), nullable=False),
    )
    op.create_index("model_lineage_dataset", "model_lineage", ["dataset_id", "dataset_version"])
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("model_id", sa.String, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("record", t.Json, nullable=False),
        sa.Column("created_at", t.Timestamp(), nullable=False),
    )
    op.create_index("evaluations_model", "evaluations", ["model_id", "created_at"])


def downgrade() -> None:
    op.drop_index("evaluations_model", "evaluations")
    op.drop_table("evaluations")
    op.drop_index("model_lineage_dataset", "model_lineage")
    op.drop_table("model_lineage")
    op.drop_table("trainings")
    op.drop_index("dataset_samples_key", "dataset_samples")
    op.drop_index("dataset_samples_live", "dataset_samples")
    op.drop_table("dataset_samples")
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
