"""Parsing queue messages: a message that cannot be understood is a poison message."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from vecpipe.core.ingest import Op
from vecpipe.core.pipeline import new_version, with_version
from vecpipe.models import QueueMessage, UpsertMessage

_adapter: TypeAdapter[QueueMessage] = TypeAdapter(QueueMessage)


@dataclass
class ParsedMessage:
    op: Op
    job_id: str | None


class PoisonMessage(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_message(body: bytes) -> ParsedMessage:
    try:
        message = _adapter.validate_json(body)
    except PydanticValidationError as exc:
        raise PoisonMessage(_describe(exc)) from None
    if isinstance(message, UpsertMessage):
        # a message published without a version is versioned when it is first read
        record = with_version(message.record, new_version())
        op = Op(message.tenant_id, record.id, record)
    else:
        op = Op(message.tenant_id, message.record_id)
    return ParsedMessage(op, message.job_id)


def _describe(exc: PydanticValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "message"
    if first.get("type") == "json_invalid":
        return "invalid JSON"
    return f"invalid message at {where}: {first.get('msg')}"
