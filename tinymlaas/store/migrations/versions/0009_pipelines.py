"""ML pipelines: runs (the file, the attempt, its driving job) and their stages (state, jobs,
artifacts, log).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tinymlaas.store.tables as t

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("filename", sa.String, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_by", sa.String, nullable=False, server_default=""),
        sa.Column("error", sa.String),
        sa.Column("created_at", t.Timestamp(), nullable=False),
        sa.Column("updated_at", t.Timestamp(), nullable=False),
    )
    op.create_index("ix_pipeline_runs_name", "pipeline_runs", ["name"])
    op.create_index("ix_pipeline_runs_state", "pipeline_runs", ["state"])
    op.create_table(
        "pipeline_stages",
        sa.Column("run_id", sa.String, sa.ForeignKey("pipeline_runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("job_ids", t.Json, nullable=False),
        sa.Column("artifacts", t.Json, nullable=False),
        sa.Column("log", t.Json, nullable=False),
        sa.Column("error", sa.String),
        sa.Column("started_at", t.Timestamp()),
        sa.Column("ended_at", t.Timestamp()),
    )


def downgrade() -> None:
    op.drop_table("pipeline_stages")
    op.drop_index("ix_pipeline_runs_state", "pipeline_runs")
    op.drop_index("ix_pipeline_runs_name", "pipeline_runs")
    op.drop_table("pipeline_runs")
