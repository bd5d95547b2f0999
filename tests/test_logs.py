"""Structured logs: JSON off a terminal, readable on one, fields kept, secrets never."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from vecpipe.logs import REDACTED, configure_logging, reset_logging, secrets_of
from vecpipe.models import Record
from vecpipe.resources import Resources
from vecpipe.settings import Settings
from vecpipe.worker.background import worker_for

ADMIN_TOKEN = "admin-token-do-not-log-7f3a"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_when_not_a_terminal_with_extra_fields(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    logging.getLogger("vecpipe.worker.worker").info(
        "batch", extra={"tenants": "acme=3", "acked": 3, "jobs": "j1"}
    )
    structlog.get_logger("vecpipe.cli").info("native", tenant="acme", count=2)
    logging.getLogger("vecpipe.any").debug("below the level: dropped")

    first, second = json_lines(stream)
    assert first["event"] == "batch" and first["level"] == "info"
    assert first["logger"] == "vecpipe.worker.worker" and "timestamp" in first
    assert (first["tenants"], first["acked"], first["jobs"]) == ("acme=3", 3, "j1")
    assert (second["event"], second["tenant"], second["count"]) == ("native", "acme", 2)


def test_readable_console_lines_on_a_terminal(restore_logging: None) -> None:
    stream = Terminal()
    configure_logging("INFO", stream=stream)
    logging.getLogger("vecpipe.worker.worker").info("batch", extra={"acked": 3})
    line = stream.getvalue()
    assert "batch" in line and "acked" in line and "3" in line
    with pytest.raises(ValueError):
        json.loads(line)


def test_secrets_are_masked_in_messages_fields_and_tracebacks(restore_logging: None) -> None:
    stream = io.StringIO()
    settings = Settings(admin_token=SecretStr(ADMIN_TOKEN))
    configure_logging("INFO", stream=stream, secrets=secrets_of(settings))
    log = logging.getLogger("vecpipe.test")
    log.info(
        "config", extra={"api_key": "sk-live-abcdefghijklmnop", "headers": {"Authorization": "x"}}
    )
    log.warning(
        "calling https://user:hunter2@gateway.example/v1?api_key=abc123 with Bearer eyJhb.c.d"
    )
    log.info("presented %s", ADMIN_TOKEN)
    try:
        raise RuntimeError("gateway refused key sk-proj-0123456789abcdef")
    except RuntimeError:
        log.exception("failed")
    structlog.get_logger("vecpipe.x").info("native", password="p4ssw0rd!", nested={"token": "t"})

    text = stream.getvalue()
    for secret in ("sk-live-abc", "hunter2", "abc123", "eyJhb", ADMIN_TOKEN, "sk-proj", "p4ssw0rd"):
        assert secret not in text
    config, call, presented, failed, native = json_lines(stream)
    assert config["api_key"] == REDACTED and config["headers"]["Authorization"] == REDACTED
    assert "gateway.example" in call["event"] and REDACTED in call["event"]
    assert presented["event"] == f"presented {REDACTED}"
    assert "RuntimeError" in failed["exception"]
    assert native["password"] == REDACTED and native["nested"]["token"] == REDACTED


def test_configuring_twice_keeps_one_handler_and_quiets_chatty_libraries(
    restore_logging: None,
) -> None:
    configure_logging("INFO", stream=io.StringIO())
    configure_logging("INFO", stream=io.StringIO())
    ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_VecpipeHandler"]
    assert len(ours) == 1
    assert logging.getLogger("alembic").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING


async def test_the_worker_logs_one_structured_line_per_batch(
    restore_logging: None, resources: Resources
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    pipeline = resources.pipeline
    for i in range(3):
        await pipeline.submit_job("acme", upserts=[_record(f"record-alpha-{i}")])
    await pipeline.submit_job("globex", upserts=[_record("g0")])
    await worker_for(resources).run_until_idle()

    batches = [e for e in json_lines(stream) if e["event"] == "batch"]
    assert len(batches) == 1  # one line for the four records, none per record
    [batch] = batches
    assert "message" not in batch  # the event is the message, once
    assert batch["messages"] == 4 and batch["acked"] == 4 and batch["upserted"] == 4
    assert batch["tenants"] == "acme=3,globex=1"
    assert batch["providers"] == "fake:all-MiniLM-L6-v2=4"
    assert len(batch["jobs"].split(",")) == 4
    assert "record-alpha" not in json.dumps(batch)  # record ids stay out of the line


def _record(record_id: str) -> Record:
    return Record(id=record_id, text=f"text of {record_id}")


def test_the_default_handler_follows_sys_stderr(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner that swaps stderr (and closes its replacement) never gets a dead stream."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    configure_logging("INFO", json=True)
    logging.getLogger("vecpipe.a").info("one")
    monkeypatch.setattr("sys.stderr", second)
    first.close()
    logging.getLogger("vecpipe.a").info("two")
    assert json.loads(second.getvalue())["event"] == "two"
