"""/metrics after real work: series labelled with the tenant and provider, never a record id."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.support.app import FakeFactory, lifespan_state
from tests.support.fake_provider import FakeProvider
from vecpipe import metrics, observe
from vecpipe.api.app import create_app
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.chain import CircuitBreaker, ProviderChain
from vecpipe.resources import Resources
from vecpipe.settings import Settings
from vecpipe.worker.background import worker_for

DASHBOARD = Path(__file__).parents[1] / "deploy" / "grafana-dashboard.json"
PROVIDER = "fake:all-MiniLM-L6-v2"  # what FakeFactory names the default model's provider


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def new_tenant() -> str:
    return f"m{uuid.uuid4().hex[:10]}"  # counters live for the process: fresh labels per test


@dataclass
class App:
    http: httpx.AsyncClient
    resources: Resources
    factory: FakeFactory

    async def scrape(self) -> str:
        response = await self.http.get("/metrics")
        assert response.status_code == 200
        return response.text


@pytest.fixture
async def app(settings: Settings, fake_factory: FakeFactory) -> AsyncIterator[App]:
    application = create_app(settings, provider_factory=fake_factory)
    async with (
        LifespanManager(application) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://vecpipe.test"
        ) as http,
    ):
        yield App(http, lifespan_state(manager).resources, fake_factory)


async def test_sync_records_and_search_are_counted_by_tenant_and_provider(app: App) -> None:
    tenant = new_tenant()
    upserts = [{"id": f"private-id-{i}", "text": f"invoice number {i} is due"} for i in range(3)]
    for _ in range(2):  # the second time every record is unchanged
        response = await app.http.post(f"/v1/tenants/{tenant}/records", json={"upsert": upserts})
        assert response.status_code == 200, response.text
    search = {"query": "when is the invoice due", "limit": 2}
    assert (await app.http.post(f"/v1/tenants/{tenant}/search", json=search)).status_code == 200

    text = await app.scrape()
    records = "vecpipe_records_total"
    assert sample(text, records, tenant=tenant, provider=PROVIDER, outcome="upserted") == 3
    assert sample(text, records, tenant=tenant, provider=PROVIDER, outcome="unchanged") == 3
    assert sample(text, "vecpipe_searches_total", tenant=tenant) == 1
    assert (sample(text, "vecpipe_embed_seconds_count", provider=PROVIDER) or 0) > 0
    assert (sample(text, "vecpipe_embed_batch_size_sum", provider=PROVIDER) or 0) >= 3
    assert (sample(text, "vecpipe_store_seconds_count", op="upsert_chunks") or 0) > 0
    assert (sample(text, "vecpipe_store_seconds_count", op="flush") or 0) > 0
    assert (sample(text, "vecpipe_search_seconds_count") or 0) > 0
    assert sample(text, "vecpipe_circuit_breaker_state", provider=PROVIDER) == 0
    assert "private-id" not in text  # record ids never become labels


async def test_worker_outcomes_dead_letters_and_state_gauges(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(observe, "SLOW_REFRESH_SECONDS", 0.0)  # every scrape reads it all
    tenant = new_tenant()
    body = {"upsert": [{"id": f"r{i}", "text": f"shipping note {i}"} for i in range(4)]}
    body["upsert"].append({"id": "bad", "text": "this one says POISON and is refused"})
    submitted = await app.http.post(f"/v1/tenants/{tenant}/jobs", json=body)
    assert submitted.status_code == 202
    await app.resources.queue.publish([b"not json at all"])

    before = await app.scrape()
    assert sample(before, "vecpipe_queue_depth") == 6
    assert sample(before, "vecpipe_jobs", state="queued") == 1
    assert sample(before, "vecpipe_jobs_submitted_total", tenant=tenant) == 1

    app.factory.built[0].reject_texts_containing = "POISON"  # a permanent 400-like refusal
    worker = worker_for(app.resources)
    await worker.run_until_idle()

    after = await app.scrape()
    records = "vecpipe_records_total"
    assert sample(after, records, tenant=tenant, provider=PROVIDER, outcome="upserted") == 4
    assert sample(after, records, tenant=tenant, provider=PROVIDER, outcome="failed") == 1
    assert sample(after, "vecpipe_dead_letters_total", tenant=tenant, provider=PROVIDER) == 1
    assert (sample(after, "vecpipe_dead_letters_total", tenant="unknown") or 0) >= 1
    assert sample(after, "vecpipe_queue_depth") == 0
    assert sample(after, "vecpipe_dead_letter_depth") == 2
    assert sample(after, "vecpipe_in_flight") == 0
    assert sample(after, "vecpipe_jobs", state="completed") == 1
    assert sample(after, "vecpipe_jobs", state="queued") == 0


async def test_fallbacks_failures_and_breaker_state_by_provider() -> None:
    space = EmbeddingSpace("m", 8)
    suffix = uuid.uuid4().hex[:6]
    primary = FakeProvider(space, fail_times=10, name=f"primary-{suffix}")
    backup = FakeProvider(space, name=f"backup-{suffix}")
    chain = ProviderChain(
        [primary, backup], [CircuitBreaker(failure_threshold=2), CircuitBreaker()]
    )
    for i in range(4):
        await chain.embed([f"text {i}"])

    assert chain.breaker_states()[primary.name] == "open"
    assert chain.breaker_states()[backup.name] == "closed"
    metrics.set_breaker_states(chain.breaker_states())
    value = metrics.BREAKER_STATE.labels(primary.name)._value.get()
    assert value == metrics.BREAKER_VALUES["open"]
    failures = metrics.PROVIDER_FAILURES.labels(primary.name)._value.get()
    assert failures == 2  # then the open breaker skips it
    assert metrics.FALLBACKS.labels(backup.name)._value.get() == 4


async def test_a_scrape_answers_when_a_backend_is_down(caplog: pytest.LogCaptureFixture) -> None:
    class DownQueue:
        async def depth(self) -> int:
            raise ConnectionError("broker gone")

        async def dead_letter_count(self) -> int:
            raise ConnectionError("broker gone")

    class DownJobs:
        async def counts_by_state(self) -> dict[str, int]:
            raise ConnectionError("database gone")

    broken = SimpleNamespace(
        queue=DownQueue(),
        database=SimpleNamespace(jobs=DownJobs()),
        providers=SimpleNamespace(breaker_states=dict),
    )
    await observe.refresh(broken)  # type: ignore[arg-type]
    warned = [r.getMessage() for r in caplog.records if r.name == "vecpipe.metrics"]
    assert any("queue depth" in m for m in warned) and any("jobs" in m for m in warned)
    assert all("broker gone" not in m for m in warned)  # the type, not the message


def test_labels_keep_to_the_safe_alphabet() -> None:
    assert metrics.tenant_label("acme-1.eu_west") == "acme-1.eu_west"
    assert metrics.tenant_label('evil"} 1\nx{') == "invalid"
    assert metrics.tenant_label(None) == "unknown"
    assert metrics.provider_label(None) == "none"
    assert len(metrics.provider_label("x" * 500)) == 160


def test_the_grafana_dashboard_charts_every_metric_and_only_real_ones() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    charted = {
        re.sub(r"_(bucket|sum|count|total)$", "", name)
        for expr in exprs
        for name in re.findall(r"vecpipe_[a-z_]+", expr)
    }
    exported = {family.name for family in REGISTRY.collect() if family.name.startswith("vecpipe_")}
    assert charted == exported
    titles = [p["title"] for p in dashboard["panels"] if p["type"] != "row"]
    assert len(titles) == len(set(titles)) >= 12
