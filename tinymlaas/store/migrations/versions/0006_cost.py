"""Cloud endpoints for hybrid inference, the policy each device was given with its escalation
count, and hybrid evaluations (local-only vs hybrid vs cloud accuracy, escalation rate).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tinymlaas.store.tables as t

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hybrid_endpoints",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("model_id", sa.String, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("variant", sa.String, nullable=False),
        sa.Column("sha256", sa.String, nullable=False),
        sa.Column("created_at", t.Timestamp(), nullable=False),
        sa.Column("served", sa.Integer, nullable=False, server_default="0"),
        sa.Column("compute_us", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_hybrid_endpoints_model_id", "hybrid_endpoints", ["model_id"])
    op.create_table(
        "hybrid_policies",
        sa.Column("device", sa.String, primary_key=True),
        sa.Column("endpoint_id", sa.String, sa.ForeignKey("hybrid_endpoints.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("set_at", t.Timestamp(), nullable=False),
        sa.Column("escalations", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_hybrid_policies_endpoint_id", "hybrid_policies", ["endpoint_id"])
    op.create_table(
        "hybrid_evaluations",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("model_id", sa.String, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("record", t.Json, nullable=False),
        sa.Column("created_at", t.Timestamp(), nullable=False),
    )
    op.create_index("ix_hybrid_evaluations_model_id", "hybrid_evaluations", ["model_id"])


def downgrade() -> None:
    op.drop_index("ix_hybrid_evaluations_model_id", "hybrid_evaluations")
    op.drop_table("hybrid_evaluations")
    op.drop_index("ix_hybrid_policies_endpoint_id", "hybrid_policies")
    op.drop_table("hybrid_policies")
    op.drop_index("ix_hybrid_endpoints_model_id", "hybrid_endpoints")
    op.drop_table("hybrid_endpoints")
