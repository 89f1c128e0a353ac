"""The operator's fleet: the device registry (devices and bridges, tags, history), groups,
rollouts with their targets, and toolchains registered at run time.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tinymlaas.store.tables as t

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("endpoint", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String, nullable=False, server_default=""),
        sa.Column("board", sa.String),
        sa.Column("location", sa.String, nullable=False, server_default=""),
        sa.Column("notes", sa.String, nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("bridge", sa.String(128)),
        sa.Column("health", sa.String),
        sa.Column("online", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("last_seen", t.Timestamp()),
        sa.Column("firmware_version", sa.String),
        sa.Column("model_sha256", sa.String),
        sa.Column("model_name", sa.String),
        sa.Column("facts", t.Json),
        sa.Column("build_id", sa.String),
        sa.Column("created_at", t.Timestamp(), nullable=False),
        sa.Column("updated_at", t.Timestamp(), nullable=False),
        sa.Column("decommissioned_at", t.Timestamp()),
    )
    for column in ("board", "state", "bridge", "online", "firmware_version", "model_sha256"):
        op.create_index(f"ix_devices_{column}", "devices", [column])
    op.create_index("devices_kind_endpoint", "devices", ["kind", "endpoint"])
    op.create_table(
        "device_tags",
        sa.Column("endpoint", sa.String(128), sa.ForeignKey("devices.endpoint", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("device_tags_tag", "device_tags", ["tag", "endpoint"])
    op.create_table(
        "device_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("at", t.Timestamp(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.String, nullable=False, server_default=""),
    )
    op.create_index("device_events_endpoint", "device_events", ["endpoint", "id"])
    op.create_table(
        "device_groups",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.String, nullable=False, server_default=""),
        sa.Column("query", t.Json, nullable=False),
        sa.Column("created_at", t.Timestamp(), nullable=False),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("name", sa.String, nullable=False, server_default=""),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("builds", t.Json, nullable=False),
        sa.Column("waves", t.Json, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("reason", sa.String, nullable=False, server_default=""),
        sa.Column("current_wave", sa.Integer, nullable=False, server_default="0"),
        sa.Column("success_threshold", sa.Float, nullable=False),
        sa.Column("error_threshold", sa.Float, nullable=False),
        sa.Column("manual_approval", sa.Boolean, nullable=False),
        sa.Column("rollback", sa.Boolean, nullable=False),
        sa.Column("devices", sa.Integer, nullable=False),
        sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("download_base", sa.String, nullable=False),
        sa.Column("created_by", sa.String, nullable=False, server_default=""),
        sa.Column("created_at", t.Timestamp(), nullable=False),
        sa.Column("updated_at", t.Timestamp(), nullable=False),
    )
    op.create_index("ix_rollouts_group_name", "rollouts", ["group_name"])
    op.create_index("ix_rollouts_state", "rollouts", ["state"])
    op.create_table(
        "rollout_targets",
        sa.Column("rollout_id", sa.String, sa.ForeignKey("rollouts.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("endpoint", sa.String(128), primary_key=True),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("board", sa.String, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("build_id", sa.String, nullable=False),
        sa.Column("deployment_id", sa.String),
        sa.Column("previous_build_id", sa.String),
        sa.Column("rollback_deployment_id", sa.String),
        sa.Column("detail", sa.String, nullable=False, server_default=""),
        sa.Column("updated_at", t.Timestamp(), nullable=False),
    )
    op.create_index("rollout_targets_wave", "rollout_targets", ["rollout_id", "wave", "state"])
    op.create_table(
        "toolchains",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("image_id", sa.String, nullable=False),
        sa.Column("reference", sa.String, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("boards", t.Json, nullable=False),
        sa.Column("description", sa.String, nullable=False, server_default=""),
        sa.Column("self_test", t.Json, nullable=False),
        sa.Column("created_at", t.Timestamp(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("toolchains")
    op.drop_index("rollout_targets_wave", "rollout_targets")
    op.drop_table("rollout_targets")
    op.drop_index("ix_rollouts_state", "rollouts")
    op.drop_index("ix_rollouts_group_name", "rollouts")
    op.drop_table("rollouts")
    op.drop_table("device_groups")
    op.drop_index("device_events_endpoint", "device_events")
    op.drop_table("device_events")
    op.drop_index("device_tags_tag", "device_tags")
    op.drop_table("device_tags")
    op.drop_index("devices_kind_endpoint", "devices")
    for column in ("board", "state", "bridge", "online", "firmware_version", "model_sha256"):
        op.drop_index(f"ix_devices_{column}", "devices")
    op.drop_table("devices")
