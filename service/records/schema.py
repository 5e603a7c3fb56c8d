"""The record store's tables (SQLAlchemy Core). Changes go through a new Alembic revision in
migrations/versions/, never by editing a released one.

One row per fitting (the keys, the patient context, the outcome and the canonical content's sha256,
which decides idempotency) and one row per walk (its answer as columns; its features and changes as
JSON lists, in catalog units). Nothing else is stored: no names, no dates of birth, no free text.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

fittings = sa.Table(
    "fittings",
    metadata,
    sa.Column("fitting_id", sa.String(128), primary_key=True),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("patient_key", sa.String(128), nullable=False, index=True),
    sa.Column("clinic_key", sa.String(64), nullable=False, index=True),
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
    # When the service stored the record (server clock, UTC): for audits and incremental exports.
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

walks = sa.Table(
    "fitting_walks",
    metadata,
    sa.Column("fitting_id", sa.String(128), sa.ForeignKey("fittings.fitting_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("walk_index", sa.Integer(), primary_key=True),
    sa.Column("answer_model_name", sa.String(64), nullable=True),
    sa.Column("answer_model_version", sa.String(64), nullable=True),
    sa.Column("answer_model_sha256", sa.String(64), nullable=True),
    sa.Column("answer_kind", sa.String(32), nullable=True),
    # [{"name", "value", "source", "derived"}], values in catalog units.
    sa.Column("features", sa.JSON(), nullable=False),
    # [{"parameter", "change"}], signed, parameter units.
    sa.Column("recommended", sa.JSON(), nullable=False),
    sa.Column("applied_after", sa.JSON(), nullable=False),
)
