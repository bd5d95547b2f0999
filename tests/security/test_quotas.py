"""Per-tenant quotas: stored records and an ingest rate, each answered with 429 + Retry-After."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.conftest import open_client
from tests.support.app import make_settings
from vecpipe.core.quotas import STORAGE_RETRY_AFTER, TenantLimits, TokenBucket
from vecpipe.errors import LimitExceeded
from vecpipe.settings import Quotas, TenantQuota


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, capacity=10, clock=clock)
    assert bucket.take(10) == 0.0
    assert bucket.take(1) == pytest.approx(0.5)  # refused: one token comes in 0.5 s
    clock.now += 0.5
    assert bucket.take(1) == 0.0
    assert bucket.take(4) == pytest.approx(2.0)
    clock.now += 1000
    assert bucket.take(10) == 0.0  # full again, never more than the capacity
    assert bucket.take(1) > 0


def test_tenant_overrides_fall_back_to_the_server_wide_quotas() -> None:
    quotas = Quotas(
        max_records=100,
        ingest_rate=10,
        ingest_burst=50,
        tenants={"big": TenantQuota(max_records=10_000), "slow": TenantQuota(ingest_rate=1)},
    )
    assert TenantLimits.of(quotas, "acme") == TenantLimits(100, 10.0, 50)
    assert TenantLimits.of(quotas, "big") == TenantLimits(10_000, 10.0, 50)
    assert TenantLimits.of(quotas, "slow") == TenantLimits(100, 1.0, 50)


def test_quota_overrides_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECPIPE_QUOTA_MAX_RECORDS", "5")
    monkeypatch.setenv("VECPIPE_QUOTA_TENANTS", '{"big": {"max_records": 500}}')
    quotas = Quotas()
    assert quotas.max_records == 5 and quotas.tenants["big"].max_records == 500


def _records(ids: list[str]) -> dict[str, Any]:
    return {"upsert": [{"id": i, "text": f"text of {i}"} for i in ids]}


async def _post(http: httpx.AsyncClient, tenant: str, body: Any, path: str = "records") -> Any:
    return await http.post(f"/v1/tenants/{tenant}/{path}", json=body)


def _assert_429(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "quota_exceeded"
    return int(response.headers["retry-after"])


async def test_max_records_counts_new_records_only(tmp_path: Path) -> None:
    quotas = Quotas(max_records=3, tenants={"big": TenantQuota(max_records=10)})
    async with open_client(make_settings(tmp_path / "data", quotas=quotas)) as http:
        assert (await _post(http, "acme", _records(["a", "b", "c"]))).status_code == 200
        refused = await _post(http, "acme", _records(["d"]))
        assert _assert_429(refused) == STORAGE_RETRY_AFTER
        assert _assert_429(await _post(http, "acme", _records(["d"]), "jobs"))
        again = await _post(http, "acme", _records(["a", "b", "c"]))  # rewrites fit
        assert again.status_code == 200, again.text
        swap = {**_records(["d"]), "delete": ["a"]}  # one out, one in
        assert (await _post(http, "acme", swap)).status_code == 200
        assert (await _post(http, "acme", {"delete": ["b", "c"]})).status_code == 200
        assert (await _post(http, "acme", _records(["e", "f"]))).status_code == 200
        assert (await _post(http, "big", _records([f"r{i}" for i in range(10)]))).status_code == 200
        assert (await http.get("/v1/tenants/acme/records/a")).status_code == 404


async def test_a_record_of_many_chunks_counts_once(tmp_path: Path) -> None:
    """The quota counts records (the store's count_records), not their chunk points."""
    long = " ".join(f"word{i}" for i in range(400))  # several chunks of the fake's 400 chars
    async with open_client(make_settings(tmp_path / "data", quotas=Quotas(max_records=2))) as http:
        assert (
            await _post(http, "acme", {"upsert": [{"id": "long", "text": long}]})
        ).status_code == 200
        assert (await _post(http, "acme", _records(["b"]))).status_code == 200
        assert _assert_429(await _post(http, "acme", _records(["c"]))) == STORAGE_RETRY_AFTER


async def test_ingest_rate_is_a_token_bucket_per_tenant(tmp_path: Path) -> None:
    quotas = Quotas(ingest_rate=0.001, ingest_burst=5)  # refills far slower than the test runs
    async with open_client(make_settings(tmp_path / "data", quotas=quotas)) as http:
        assert (await _post(http, "acme", _records(["a", "b", "c"]))).status_code == 200
        assert (await _post(http, "acme", {"delete": ["x", "y"]})).status_code == 200
        refused = await _post(http, "acme", _records(["d"]))
        assert _assert_429(refused) >= 999  # a token every 1000 s
        assert _assert_429(await _post(http, "acme", _records(["d"]), "jobs"))
        assert (await _post(http, "beta", _records(["a", "b", "c", "d", "e"]))).status_code == 200
        too_big = await _post(http, "gamma", _records([f"r{i}" for i in range(6)]))
        assert too_big.status_code == 413  # more than the burst could ever admit
        assert (await http.get("/v1/tenants/acme/records/d")).status_code == 404


async def test_a_record_quota_refusal_gives_its_rate_tokens_back(tmp_path: Path) -> None:
    quotas = Quotas(max_records=2, ingest_rate=0.001, ingest_burst=4)
    async with open_client(make_settings(tmp_path / "data", quotas=quotas)) as http:
        assert (await _post(http, "acme", _records(["a", "b"]))).status_code == 200
        for _ in range(3):  # each takes 1 token, is refused on records, and gives it back
            assert _assert_429(await _post(http, "acme", _records(["c"]))) == STORAGE_RETRY_AFTER
        assert (await _post(http, "acme", _records(["a", "b"]))).status_code == 200


def test_an_oversized_batch_is_a_413_not_a_429() -> None:
    from vecpipe.core.quotas import QuotaService

    service = QuotaService(Quotas(ingest_rate=1, ingest_burst=2), clock=Clock())
    with pytest.raises(LimitExceeded, match="ingest burst is 2") as info:
        service.take_rate("acme", service.limits("acme"), 3)
    assert info.type is LimitExceeded


async def test_a_sync_counts_its_drift_against_the_quotas_in_both_forms(tmp_path: Path) -> None:
    """Only what a sync writes counts: unchanged records are free, extras make room; a
    refused sync writes nothing, as a job neither."""
    quotas = Quotas(max_records=3)
    async with open_client(make_settings(tmp_path / "data", quotas=quotas)) as http:
        assert (await _post(http, "acme", _records(["a", "b", "c"]))).status_code == 200
        same = {"records": _records(["a", "b", "c"])["upsert"]}
        assert (await _post(http, "acme", same, "sync")).status_code == 200  # unchanged
        four = {"records": _records(["a", "b", "c", "d"])["upsert"]}
        assert _assert_429(await _post(http, "acme", four, "sync")) == STORAGE_RETRY_AFTER
        assert _assert_429(await _post(http, "acme", four, "sync?job=true"))
        lines = "".join(f'{{"id": "{i}", "text": "text of {i}"}}\n' for i in "abcd")
        streamed = await http.post(
            "/v1/tenants/acme/sync",
            content=lines.encode(),
            headers={"content-type": "application/x-ndjson"},
        )
        _assert_429(streamed)
        jobs = (await http.get("/v1/tenants/acme/jobs")).json()
        assert jobs == [] and (await http.get("/v1/tenants/acme/records/d")).status_code == 404
        swap = {"records": _records(["b", "c", "d"])["upsert"]}  # "a" goes, "d" comes
        assert (await _post(http, "acme", swap, "sync")).status_code == 200
        assert (await http.get("/v1/tenants/acme/records/d")).status_code == 200
