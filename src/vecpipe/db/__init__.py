"""Tenant AI configs, jobs and API tokens in SQLite or PostgreSQL (SQLAlchemy async).

async with open_database(url) as db:   # migrates to head; disposes the engine on exit
    db.configs  ConfigRepo   tenant AI config as plain JSON dicts
    db.jobs     JobRepo      jobs with exact per-record outcome accounting
    db.tokens   TokenRepo    hashed API tokens
"""

from vecpipe.db.configs import ConfigEntry, ConfigRepo
from vecpipe.db.engine import Database, open_database
from vecpipe.db.jobs import JobFailure, JobRepo, JobStatus
from vecpipe.db.tokens import TokenInfo, TokenRepo

__all__ = [
    "ConfigEntry",
    "ConfigRepo",
    "Database",
    "JobFailure",
    "JobRepo",
    "JobStatus",
    "TokenInfo",
    "TokenRepo",
    "open_database",
]
