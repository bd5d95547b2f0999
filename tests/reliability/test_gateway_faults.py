"""The gateway fault matrix: every way a gateway fails is retried or dead-lettered, never stored.

Each case runs a real worker (`VectorizationWorker.run()`) on a tenant whose provider is the
loopback test gateway, behind a port the test can switch off (connection refused). While the
fault lasts (it is injected on every request) the messages are retried with the reason, or
dead-lettered with it; no vector is stored and the worker keeps running. Then the fault
clears and the backlog drains (dead letters are replayed first).

The chain's circuit breaker gets no cooldown here: it would otherwise answer "paused" for 30 s
instead of letting each retry meet the fault (tests/providers/test_chain.py covers it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.reliability.support import QueueSpy, TcpSwitch, gateway_factory
from tests.support.app import make_settings
from tests.support.gateway import Fault, Gateway
from tests.support.processes import eventually
from vecpipe.models import EmbeddingSpace, Record
from vecpipe.resources import Resources, open_resources
from vecpipe.settings import Settings
from vecpipe.worker.background import stop_worker, worker_for

TENANT = "faulty"
RECORDS = 5
SPACE = EmbeddingSpace("fault-model", 16)
STICKY = 10_000  # copies of a fault queued: it lasts until the test clears it


@dataclass(frozen=True)
class Case:
    name: str
    fault: Fault | None  # None: the gateway's port refuses connections
    retried: bool  # else dead-lettered
    reason: str


CASES = [
    Case("429 with Retry-After", Fault.rate_limited("0.5"), True, "HTTP 429"),
    Case("500", Fault.http_status(500), True, "HTTP 500"),
    Case("503", Fault.http_status(503), True, "HTTP 503"),
    Case("timeout", Fault.sleep(5.0), True, "timed out"),
    Case("connection refused", None, True, "connection failed"),
    Case("reset mid-body", Fault.reset(), True, "connection failed"),
    Case("malformed JSON", Fault.malformed_json(), False, "body is not JSON"),
    Case("wrong count", Fault.wrong_count(), False, "embeddings for"),
    Case("wrong dimension", Fault.wrong_dimension(), False, "dimension 15, expected 16"),
    Case("NaN", Fault.nan(), False, "NaN or infinite"),
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data",
        gateway_allowlist="127.0.0.1",
        secret_key="fault-matrix secret",
        max_attempts=1000,  # transient faults are retried for as long as the test lets them
        retry_max_seconds=1.0,
        breaker_cooldown_seconds=0.0,
    )


@pytest.fixture
async def switch(gateway: Gateway) -> AsyncIterator[TcpSwitch]:
    port = urlsplit(gateway.base_url).port
    assert port is not None
    switch = TcpSwitch(port)
    await switch.on()
    try:
        yield switch
    finally:
        await switch.aclose()


@pytest.fixture
async def resources(settings: Settings, switch: TcpSwitch) -> AsyncIterator[Resources]:
    factory = gateway_factory(settings.allowlisted_gateway_hosts)
    async with open_resources(settings, provider_factory=factory) as opened:
        provider = {
            "kind": "openai",
            "base_url": f"http://127.0.0.1:{switch.port}/v1",
            "model": SPACE.model,
            "api_key": "sk-fault-matrix",
            "dimensions": SPACE.dimension,
            "timeout_seconds": 0.3,
        }
        await opened.pipeline.set_ai_config(TENANT, {"primary": provider})
        yield opened


async def start_fault(case: Case, gateway: Gateway, switch: TcpSwitch) -> None:
    if case.fault is None:
        await switch.off()
    else:
        gateway.control.inject(*[case.fault] * STICKY)


async def clear_fault(case: Case, gateway: Gateway, switch: TcpSwitch) -> None:
    gateway.control.faults.clear()
    await switch.on()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_fault_is_retried_or_dead_lettered_then_drains(
    case: Case, resources: Resources, gateway: Gateway, switch: TcpSwitch
) -> None:
    pipeline, queue, store = resources.pipeline, resources.queue, resources.store
    spy = QueueSpy(queue).install()
    await start_fault(case, gateway, switch)
    records = [Record(id=f"r{i}", text=f"record number {i} about faults") for i in range(RECORDS)]
    job_id = await pipeline.submit_job(TENANT, upserts=records)
    worker = worker_for(resources)
    task = asyncio.create_task(worker.run())
    try:
        if case.retried:
            await eventually(lambda: _true(len(spy.retries) >= RECORDS), "a retry round")
            assert await queue.list_dead_letters() == []
            assert all(case.reason in reason for _, reason in spy.retries), spy.retries[:2]
            if case.fault is not None and case.fault.retry_after:  # honoured by the worker
                assert all(delay >= 0.5 for delay, _ in spy.retries), spy.retries
        else:
            await eventually(lambda: _dead_letters(resources, RECORDS), "every record dead")
            letters = await queue.list_dead_letters()
            assert all(case.reason in letter.reason for letter in letters), letters[0].reason
            status = await pipeline.job(TENANT, job_id)
            assert status.failed == RECORDS
            assert all(case.reason in (f["error"] or "") for f in status.failures)
        await store.ensure_space(SPACE)
        assert await store.count(SPACE, TENANT) == 0  # nothing stored while the fault lasts
        assert spy.acks == 0 and not task.done()  # nothing acknowledged; the worker runs on

        await clear_fault(case, gateway, switch)
        if not case.retried:
            assert await queue.replay_dead_letters() == RECORDS
        await eventually(lambda: _stored(resources, RECORDS), "the backlog drained")
        await eventually(lambda: _true(spy.acks == RECORDS), "every message acknowledged")
        assert await queue.depth() == 0 and await queue.list_dead_letters() == []
        if case.retried:
            status = await pipeline.job(TENANT, job_id)
            assert (status.status, status.done) == ("completed", RECORDS)
    finally:
        await stop_worker(worker, task, 5.0)
    assert task.done() and task.exception() is None


async def _true(value: bool) -> bool:
    return value


async def _dead_letters(resources: Resources, count: int) -> bool:
    return len(await resources.queue.list_dead_letters()) >= count


async def _stored(resources: Resources, count: int) -> bool:
    await resources.store.ensure_space(SPACE)
    return await resources.store.count(SPACE, TENANT) == count
