"""Beyond one machine: job leases (who runs a job, until when, which attempt, a cancel asked
from another process, the task to send again) and the service instances sharing the database,
with the instance each device is registered with.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tinymlaas.store.tables as t

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("task", t.Json),
        sa.Column("cancellable", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("owner", sa.String),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("lease_until", t.Timestamp()),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_job_leases_owner", "job_leases", ["owner"])
    op.create_table(
        "service_instances",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("api_url", sa.String, nullable=False),
        sa.Column("started_at", t.Timestamp(), nullable=False),
        sa.Column("seen_at", t.Timestamp(), nullable=False),
    )
    op.create_table(
        "device_homes",
        sa.Column("endpoint", sa.String(128), primary_key=True),
        sa.Column("instance", sa.String(64), nullable=False),
        sa.Column("since", t.Timestamp(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("device_homes")
    op.drop_table("service_instances")
    op.drop_index("ix_job_leases_owner", "job_leases")
    op.drop_table("job_leases")
