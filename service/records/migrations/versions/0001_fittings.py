"""fittings and fitting_walks

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fittings",
        sa.Column("fitting_id", sa.String(128), primary_key=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("patient_key", sa.String(128), nullable=False),
        sa.Column("clinic_key", sa.String(64), nullable=False),
        sa.Column("amputation_level", sa.String(16), nullable=False),
        sa.Column("prosthetic_side", sa.String(8), nullable=False),
        sa.Column("body_mass_kg", sa.Double(), nullable=False),
        sa.Column("height_m", sa.Double(), nullable=True),
        sa.Column("k_level", sa.Integer(), nullable=True),
        sa.Column("foot_type", sa.String(32), nullable=False),
        sa.Column("knee_type", sa.String(32), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("prosthetist_rating", sa.Integer(), nullable=False),
        sa.Column("socket_comfort_score", sa.Double(), nullable=True),
        sa.Column("n_walks", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_fittings_patient_key", "fittings", ["patient_key"])
    op.create_index("ix_fittings_clinic_key", "fittings", ["clinic_key"])
    op.create_index("ix_fittings_recorded_at", "fittings", ["recorded_at"])
    op.create_table(
        "fitting_walks",
        sa.Column(
            "fitting_id",
            sa.String(128),
            sa.ForeignKey("fittings.fitting_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("walk_index", sa.Integer(), primary_key=True),
        sa.Column("answer_model_name", sa.String(64), nullable=True),
        sa.Column("answer_model_version", sa.String(64), nullable=True),
        sa.Column("answer_model_sha256", sa.String(64), nullable=True),
        sa.Column("answer_kind", sa.String(32), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("recommended", sa.JSON(), nullable=False),
        sa.Column("applied_after", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fitting_walks")
    op.drop_index("ix_fittings_recorded_at", "fittings")
    op.drop_index("ix_fittings_clinic_key", "fittings")
    op.drop_index("ix_fittings_patient_key", "fittings")
    op.drop_table("fittings")
