"""The fleet's telemetry for the dashboard: online/offline per tick, each device's last
figures, inferences per hour and board.

Revision ID: 0005
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tinymlaas.store.tables as t

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telemetry_fleet",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", t.Timestamp(), nullable=False),
        sa.Column("online", sa.Integer, nullable=False),
        sa.Column("offline", sa.Integer, nullable=False),
    )
    op.create_index("ix_telemetry_fleet_at", "telemetry_fleet", ["at"])
    op.create_table(
        "telemetry_devices",
        sa.Column("endpoint", sa.String, primary_key=True),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("board", sa.String),
        sa.Column("firmware_version", sa.String),
        sa.Column("model_sha256", sa.String),
        sa.Column("model_name", sa.String),
        sa.Column("runtime", sa.String),
        sa.Column("inference_count", sa.Integer),
        sa.Column("latency_us", sa.Integer),
        sa.Column("instructions", sa.Integer),
        sa.Column("seen_at", t.Timestamp()),
    )
    op.create_table(
        "telemetry_inferences",
        sa.Column("hour", t.Timestamp(), primary_key=True),
        sa.Column("board", sa.String, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("telemetry_inferences")
    op.drop_table("telemetry_devices")
    op.drop_index("ix_telemetry_fleet_at", "telemetry_fleet")
    op.drop_table("telemetry_fleet")
