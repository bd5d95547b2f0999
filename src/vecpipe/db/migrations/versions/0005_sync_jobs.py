"""Sync jobs: a full sync run through the queue, its drift report and publishing state.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Written out by hand, like 0001; portable across SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_jobs",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_sync_jobs_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name="pk_sync_jobs"),
        sa.CheckConstraint("state IN ('publishing', 'published')", name="ck_sync_jobs_state"),
    )
    op.create_index("ix_sync_jobs_tenant_id", "sync_jobs", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_sync_jobs_tenant_id", table_name="sync_jobs")
    op.drop_table("sync_jobs")
