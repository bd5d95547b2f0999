"""Per-tenant embedding-model migrations.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01

Written out by hand, like 0001; portable across SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "migrations",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("from_config", sa.JSON(), nullable=True),
        sa.Column("to_config", sa.JSON(), nullable=False),
        sa.Column("from_space", sa.JSON(), nullable=False),
        sa.Column("to_space", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delete_old_after", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_migrations"),
        sa.CheckConstraint(
            "state IN ('running', 'switched', 'done', 'cancelled')", name="ck_migrations_state"
        ),
    )
    op.create_index("ix_migrations_state", "migrations", ["state"])


def downgrade() -> None:
    op.drop_table("migrations")
