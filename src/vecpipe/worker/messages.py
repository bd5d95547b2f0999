"""Parsing queue messages: a message that cannot be understood, or names a record that may
not be stored, is a poison message (dead-lettered with the reason, never retried).

Messages applications publish themselves pass the checks the HTTP routes apply
(record_checks.py), with the same limits. All of them are cheap and come before any
chunking or embedding, so an oversized record costs its batch next to nothing; a message
too large for any valid record is refused before it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from vecpipe.core.ingest import Op
from vecpipe.core.pipeline import new_version, with_version
from vecpipe.errors import ValidationError
from vecpipe.models import QueueMessage, UpsertMessage
from vecpipe.record_checks import check_record, check_record_id, max_message_bytes
from vecpipe.settings import Limits

_adapter: TypeAdapter[QueueMessage] = TypeAdapter(QueueMessage)


@dataclass
class ParsedMessage:
    op: Op
    job_id: str | None


class PoisonMessage(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_message(body: bytes, limits: Limits) -> ParsedMessage:
    largest = max_message_bytes(limits)
    if len(body) > largest:
        raise PoisonMessage(
            f"message of {len(body)} bytes: larger than any record within the limits "
            f"can take ({largest} bytes)"
        )
    try:
        message = _adapter.validate_json(body)
    except PydanticValidationError as exc:
        raise PoisonMessage(_describe(exc, limits)) from None
    try:
        if isinstance(message, UpsertMessage):
            check_record(message.record, limits)
        else:
            check_record_id(message.record_id, limits)
    except ValidationError as exc:
        raise PoisonMessage(exc.message) from None
    if isinstance(message, UpsertMessage):
        # a message published without a version is versioned when it is read (again on
        # each redelivery: see docs/api.md's queue message schema)
        record = with_version(message.record, new_version())
        op = Op(message.tenant_id, record.id, record)
    else:
        op = Op(message.tenant_id, message.record_id)
    return ParsedMessage(op, message.job_id)


def _describe(exc: PydanticValidationError, limits: Limits) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "message"
    if first.get("type") == "json_invalid":
        if "recursion limit" in str(first.get("msg", "")):
            # valid JSON the parser will not descend into (about 200 levels)
            return (
                "message nested deeper than the JSON parser accepts; metadata may be nested "
                f"at most {limits.max_metadata_depth} levels (VECPIPE_LIMIT_MAX_METADATA_DEPTH)"
            )
        return "invalid JSON"
    return f"invalid message at {where}: {first.get('msg')}"
