"""The schema as SQLAlchemy Core tables: what the repositories query.

The migrations in `migrations/versions/` create the same tables; they are written out there
by hand (frozen), so a later change here needs a new revision, never an edit of an old one.
`tests/db/test_migrations.py` checks that the migrated schema matches this metadata.
"""

from __future__ import annotations

import sqlalchemy as sa

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

OUTCOMES = ("done", "unchanged", "not_found", "failed")
OPS = ("upsert", "delete")

tenant_configs = sa.Table(
    "tenant_configs",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("total", sa.Integer(), nullable=False),
    # set by the outcome that completes the job (null before, and for jobs older than 0004)
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index(None, "tenant_id", "created_at"),
)

job_items = sa.Table(
    "job_items",
    metadata,
    sa.Column(
        "job_id",
        sa.String(32),
        sa.ForeignKey("jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("record_id", sa.String(512), primary_key=True),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.CheckConstraint("op IN ('upsert', 'delete')", name="op"),
    sa.CheckConstraint(
        "outcome IS NULL OR outcome IN ('done', 'unchanged', 'not_found', 'failed')",
        name="outcome",
    ),
    sa.Index(None, "job_id", "outcome"),
)

SYNC_JOB_STATES = ("publishing", "published")

# A full sync run as a job (core/sync_job.py): the drift it found, and whether every message
# of the job was published ("publishing" until then: a job left so by a crash is failed).
sync_jobs = sa.Table(
    "sync_jobs",
    metadata,
    sa.Column(
        "job_id",
        sa.String(32),
        sa.ForeignKey("jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("report", sa.JSON(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('publishing', 'published')", name="state"),
    sa.Index(None, "tenant_id"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index(None, "tenant_id"),
)

TOMBSTONE_STATES = ("deleting", "deleted")

# A tenant being offboarded, or offboarded (core/offboard.py): queued messages of its jobs
# are dropped (and counted here) instead of re-creating its data.
tenant_tombstones = sa.Table(
    "tenant_tombstones",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("removed", sa.JSON(), nullable=True),
    sa.Column("dropped", sa.Integer(), nullable=False),
    sa.CheckConstraint("state IN ('deleting', 'deleted')", name="state"),
)

MIGRATION_STATES = ("running", "switched", "done", "cancelled")

reindexes = sa.Table(
    "migrations",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("from_config", sa.JSON(), nullable=True),  # null: the tenant had the default
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
    sa.CheckConstraint("state IN ('running', 'switched', 'done', 'cancelled')", name="state"),
    sa.Index(None, "state"),
)
