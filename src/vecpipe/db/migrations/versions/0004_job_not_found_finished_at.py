"""Jobs: a `not_found` outcome (a delete of an id that was not stored) and `finished_at`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Written out by hand, like 0001; portable across SQLite and PostgreSQL (batch mode recreates
the table on SQLite, which cannot alter a CHECK constraint).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "outcome IS NULL OR outcome IN ('done', 'unchanged', 'failed')"
_NEW = "outcome IS NULL OR outcome IN ('done', 'unchanged', 'not_found', 'failed')"


def _outcome_check(condition: str) -> None:
    with op.batch_alter_table("job_items") as batch:
        batch.drop_constraint("ck_job_items_outcome", type_="check")
        batch.create_check_constraint("ck_job_items_outcome", condition)


def upgrade() -> None:
    _outcome_check(_NEW)
    op.add_column("jobs", sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("finished_at")
    op.execute("UPDATE job_items SET outcome = 'unchanged' WHERE outcome = 'not_found'")
    _outcome_check(_OLD)
