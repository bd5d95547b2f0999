"""Messages applications publish themselves pass the HTTP routes' checks, with the same
limits: each record the engine could not read back, or over a size limit, becomes a dead
letter with the reason, decided before any chunking or embedding, while the good messages of
the same batch are processed. On the SQLite queue and on RabbitMQ.

Before: a 2 MiB text and 4 MiB of metadata were accepted (the 2 MiB text held a batch of 60
good messages for 229 s on the local model), metadata nested 127 levels bricked the tenant,
and a NaN failed the batch's Edge write with its internals as the reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.queue.conftest import delete_topology, rabbitmq_url  # noqa: F401  (fixture)
from tests.support.app import edge_store
from vecpipe.errors import ValidationError
from vecpipe.queue.base import MessageQueue
from vecpipe.queue.rabbitmq import RabbitQueue
from vecpipe.queue.rabbitmq.topology import Topology
from vecpipe.resources import Resources
from vecpipe.settings import Limits
from vecpipe.worker.background import worker_for
from vecpipe.worker.messages import PoisonMessage, parse_message

TENANT = "acme"
MiB = 1024 * 1024


def upsert(record_id: str, text: str = "a published record", metadata: str = "{}") -> bytes:
    record = f'{{"id": "{record_id}", "text": "{text}", "metadata": {metadata}, "version": 7}}'
    return f'{{"v": 1, "op": "upsert", "tenant_id": "{TENANT}", "record": {record}}}'.encode()


def nested(levels: int, open_: str = '{"a":', close: str = "}") -> str:
    """Metadata `levels` deep, the metadata object the first."""
    return '{"a":' + open_ * (levels - 1) + "1" + close * (levels - 1) + "}"


# (message, what its dead letter's reason says)
POISON = {
    "objects": (upsert("objects", metadata=nested(33)), "metadata nested deeper than 32 levels"),
    "lists": (upsert("lists", metadata=nested(33, "[", "]")), "nested deeper than 32 levels"),
    "the issue's 127": (upsert("issue", metadata=nested(127)), "nested deeper than 32 levels"),
    "parser depth": (upsert("parser", metadata=nested(300)), "deeper than the JSON parser"),
    "NaN": (upsert("nan", metadata='{"x": NaN}'), "NaN is not allowed (JSON numbers are"),
    "Infinity": (upsert("inf", metadata='{"x": [Infinity]}'), "Infinity is not allowed"),
    "-Infinity": (upsert("ninf", metadata='{"x": -Infinity}'), "-Infinity is not allowed"),
    "2 MiB text": (upsert("text", text="x" * 2 * MiB), "text larger than 1048576 bytes"),
    "4 MiB metadata": (
        upsert("meta", metadata='{"k": "' + "v" * 4 * MiB + '"}'),
        "metadata larger than 16384 bytes",
    ),
    "long id": (upsert("i" * 600), "record.id: String should have at most 512 characters"),
    "blank text": (upsert("blank", text="   "), "text must not be blank"),
    "7 MiB message": (upsert("huge", text="x" * 7 * MiB), "larger than any record"),
}
GOOD = 60


def good_messages() -> list[bytes]:
    return [upsert(f"good-{i}", f"good record {i}", '{"k": "v"}') for i in range(GOOD)]


@pytest.fixture(params=["sqlite", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def queue(
    request: pytest.FixtureRequest, resources: Resources
) -> AsyncIterator[MessageQueue]:
    if request.param == "sqlite":
        yield resources.queue
        return
    url: str = request.getfixturevalue("rabbitmq_url")
    name = f"vecpipe-test-{uuid.uuid4().hex[:12]}"
    rabbit = await RabbitQueue(url, name, reconnect_interval=0.2, max_retry_delay=5.0).open()
    try:
        yield rabbit
    finally:
        await rabbit.aclose()
        await delete_topology(url, [Topology.for_queue(name, 5.0)])


async def test_poison_records_are_dead_lettered_and_the_batch_goes_on(
    resources: Resources, queue: MessageQueue
) -> None:
    bodies = good_messages()
    for message, _ in POISON.values():
        bodies.insert(len(bodies) // 2, message)  # amid the good ones, in one batch
    await queue.publish(bodies)
    worker = worker_for(resources, queue=queue)
    await worker.run_until_idle()

    letters = await queue.list_dead_letters(limit=100)
    reasons = sorted(letter.reason for letter in letters)
    assert len(letters) == len(POISON), reasons
    for name, (_, reason) in POISON.items():
        assert any(reason in r for r in reasons), (name, reasons)
    assert worker.stats.processed == GOOD and worker.stats.retried == 0
    # decided before chunking: the provider saw one text per good record, nothing else
    assert resources.pipeline.ingestor.provider_texts == GOOD
    pipeline = resources.pipeline
    assert (await pipeline.get_record(TENANT, "good-7")).metadata == {"k": "v"}
    assert len(await pipeline.search(TENANT, "good record", limit=100)) == GOOD
    assert len(await pipeline.search(TENANT, "good record", 100, {"k": "v"})) == GOOD
    await edge_store(resources).optimize(await pipeline.space_of(TENANT))  # reloads the shard
    assert len(await pipeline.search(TENANT, "good record", 100, {"k": "v"})) == GOOD


def test_a_message_at_the_limits_parses_with_its_record() -> None:
    limits = Limits()
    metadata = nested(32)
    parsed = parse_message(upsert("deep", "x" * MiB, metadata), limits)
    assert parsed.op.record is not None and parsed.op.record.metadata == json.loads(metadata)
    assert parsed.op.version == 7


@pytest.mark.parametrize(
    ("limits", "body", "reason"),
    [
        (Limits(max_text_bytes=10), upsert("t", "x" * 11), "text larger than 10 bytes"),
        (Limits(max_metadata_depth=2), upsert("d", metadata=nested(3)), "deeper than 2 levels"),
        (Limits(max_id_length=3), upsert("abcd"), "longer than 3 characters"),
        (
            Limits(max_id_length=3),
            b'{"v": 1, "op": "delete", "tenant_id": "t", "record_id": "abcd"}',
            "longer than 3 characters",
        ),
        (Limits(max_text_bytes=10), upsert("t", "x" * 200_000), "larger than any record"),
    ],
    ids=["text", "depth", "id", "delete id", "raw size"],
)
def test_the_settings_limits_apply_to_messages(limits: Limits, body: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessage) as refused:
        parse_message(body, limits)
    assert reason in refused.value.reason


def test_invalid_json_is_still_called_so() -> None:
    with pytest.raises(PoisonMessage) as refused:
        parse_message(b'{"v": 1, "op": ', Limits())
    assert refused.value.reason == "invalid JSON"


def test_the_reasons_match_the_http_messages() -> None:
    from vecpipe.models import Record
    from vecpipe.record_checks import check_record

    record: dict[str, Any] = {"id": "nan", "text": "t", "metadata": {"x": float("nan")}}
    with pytest.raises(ValidationError) as http:
        check_record(Record(**record), Limits())
    with pytest.raises(PoisonMessage) as queued:
        parse_message(upsert("nan", "t", '{"x": NaN}'), Limits())
    assert queued.value.reason == http.value.message
