"""Tenant tombstones: offboarded tenants, whose late messages are dropped.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

Written out by hand, like 0001; portable across SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_tombstones",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed", sa.JSON(), nullable=True),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenant_tombstones"),
        sa.CheckConstraint("state IN ('deleting', 'deleted')", name="ck_tenant_tombstones_state"),
    )


def downgrade() -> None:
    op.drop_table("tenant_tombstones")
