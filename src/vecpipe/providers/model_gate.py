"""Turns at a shared local model: search queries first, then ingest, one batch per turn.

Every encode of a local model runs one batch per turn of its `ModelGate`, from whichever
thread asked. When the model comes free, a waiting query batch gets it before any ingest
batch; within a lane, batches go in the order they asked. An ingest embed of hundreds of
texts asks once per batch, so a query waits for at most the one batch in flight, never for
the ingest calls queued behind it.

A batch is a query's when its call says so, `embed(texts, purpose="query")`
(`Lane.for_purpose`): `Pipeline.search` embeds its query that way. The mark is explicit
rather than a rule on the call's size because size says nothing about urgency: an ingest of
one short record is no query, and a search must jump the queue whatever its text. It is an
argument, not a context variable, so whoever calls a provider sees what it asks for.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from vecpipe.providers.base import Purpose

__all__ = ["Lane", "ModelGate"]


class Lane(enum.Enum):
    """Who is asking for the model, in priority order."""

    QUERY = "query"
    INGEST = "ingest"

    @classmethod
    def for_purpose(cls, purpose: Purpose) -> Lane:
        """A search's query goes first; every document (ingest, /v1/embeddings) waits."""
        if purpose == "query":
            return cls.QUERY
        if purpose == "document":
            return cls.INGEST
        raise ValueError(f"unknown embedding purpose {purpose!r}")


class ModelGate:
    """A lock with two queues: the model runs one batch at a time, queries' batches first.

    It also serializes everything that touches the model's own tokenizer (which
    sentence-transformers reconfigures on every encode, so it is not safe to share between
    threads).
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._waiting: dict[Lane, deque[object]] = {lane: deque() for lane in Lane}

    @contextmanager
    def turn(self, lane: Lane) -> Iterator[None]:
        """Hold the model for one batch; blocks until it is this caller's turn."""
        ticket = object()
        with self._changed:
            queue = self._waiting[lane]
            queue.append(ticket)
            self._changed.wait_for(lambda: not self._busy and self._next() is ticket)
            queue.popleft()
            self._busy = True
        try:
            yield
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()

    def waiting(self, lane: Lane) -> int:
        """Batches waiting for a turn in `lane` (for tests and diagnostics)."""
        with self._changed:
            return len(self._waiting[lane])

    def _next(self) -> object | None:
        for lane in Lane:  # in priority order
            if self._waiting[lane]:
                return self._waiting[lane][0]
        return None
