"""The seed scenario: a synchronous loop embedding through a gateway, once per message.

The pattern vecpipe replaces (asyncio.run per call, an AsyncOpenAI client across loops)
logs "Event loop is closed" and leaks sockets. SyncPipeline must leave nothing behind.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
import warnings
from pathlib import Path

import pytest

from tests.conftest import asyncio_error_messages
from tests.support.app import FakeFactory, make_settings
from tests.support.gateway import Gateway
from tests.support.sockets import open_sockets, wait_for_sockets_at_most
from vecpipe.errors import ClosedError, StoreLocked
from vecpipe.models import Record
from vecpipe.resources import open_resources
from vecpipe.sync import SyncPipeline

API_KEY = "sk-sync-test-key-0123456789"


def gateway_config(gateway: Gateway) -> dict[str, object]:
    return {
        "primary": {
            "kind": "openai",
            "base_url": gateway.base_url,
            "model": "gw-model",
            "api_key": API_KEY,
            "dimensions": 16,
        }
    }


@pytest.fixture
def sync_settings(tmp_path: Path):
    return make_settings(tmp_path / "data", gateway_allowlist="127.0.0.1", secret_key="s3cret")


def test_seed_scenario_500_sync_embeds_leave_nothing_behind(sync_settings, gateway) -> None:
    baseline = open_sockets()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline = SyncPipeline(sync_settings)
        pipeline.set_ai_config("gw", gateway_config(gateway))
        for i in range(500):
            [vector] = pipeline.embed([f"message number {i}"], tenant_id="gw")
            assert len(vector) == 16
        pipeline.close()
        asyncio.run(asyncio.sleep(0))  # a new loop, as the next sync job would make
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert asyncio_error_messages() == []
    assert wait_for_sockets_at_most(baseline) <= baseline
    assert gateway.control.requests >= 500


def test_sync_pipeline_is_safe_from_several_threads(sync_settings, gateway) -> None:
    errors: list[BaseException] = []
    with SyncPipeline(sync_settings) as pipeline:
        pipeline.set_ai_config("gw", gateway_config(gateway))

        def work(n: int) -> None:
            try:
                for i in range(25):
                    pipeline.embed([f"thread {n} message {i}"], tenant_id="gw")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result = pipeline.ingest("gw", [Record(id="a", text="stored through the facade")])
        assert result.upserted == ["a"]
        assert pipeline.search("gw", "stored through the facade")[0].id == "a"
        pipeline.ingest("gw", [Record(id="b", text="facade", metadata={"k": "v"})])
        keyword = pipeline.search("gw", "facade", mode="keyword", filter={"id": {"$ne": "b"}})
        assert [hit.id for hit in keyword] == ["a"]
        assert [hit.id for hit in pipeline.search("gw", like="a", diversity=0.3)] == ["b"]
        assert pipeline.facets("gw", ["k"]) == {"k": [("v", 1)]}
    assert errors == []
    assert pipeline.closed
    with pytest.raises(ClosedError):
        pipeline.embed(["after close"], tenant_id="gw")


def test_forgotten_sync_pipeline_is_closed_when_collected(sync_settings, gateway) -> None:
    baseline = open_sockets()
    pipeline = SyncPipeline(sync_settings)
    pipeline.set_ai_config("gw", gateway_config(gateway))
    pipeline.embed(["hello"], tenant_id="gw")
    del pipeline
    gc.collect()
    assert wait_for_sockets_at_most(baseline) <= baseline


async def test_the_sync_facade_on_an_owned_data_dir_fails_at_once(sync_settings) -> None:
    """Beside the data dir's owner (here a stack in this same process), never a second open."""
    async with open_resources(sync_settings, provider_factory=FakeFactory()) as resources:
        await resources.pipeline.ingest("t", [Record(id="r1", text="kept safe")])
        started = time.perf_counter()
        with pytest.raises(StoreLocked, match=f"in use by process {os.getpid()}"):
            await asyncio.to_thread(SyncPipeline, sync_settings)
        assert time.perf_counter() - started < 10  # at once (a bound for a loaded box)
        assert [hit.id for hit in await resources.pipeline.search("t", "kept safe", 1)] == ["r1"]
    assert not [t for t in threading.enumerate() if "portal" in t.name.lower()]


def test_the_sync_facade_lists_counts_and_deletes_by_filter(sync_settings, gateway) -> None:
    with SyncPipeline(sync_settings) as pipeline:
        pipeline.set_ai_config("gw", gateway_config(gateway))
        pipeline.ingest(
            "gw",
            [
                {"id": f"r{i}", "text": f"text {i}", "metadata": {"even": i % 2 == 0}}
                for i in range(5)
            ],
        )
        assert pipeline.count_records("gw") == 5
        assert pipeline.count_records("gw", {"even": True}) == 3
        page = pipeline.list_records("gw", limit=2)
        assert len(page.records) == 2 and page.next_cursor is not None
        assert pipeline.delete_records("gw", {"even": True}, dry_run=True) == 3
        assert pipeline.delete_records("gw", {"even": True}) == 3
        rest = pipeline.list_records("gw", filter=None)
        assert sorted(r.record_id for r in rest.records) == ["r1", "r3"]
        wanted = [{"id": "r1", "text": "text 1", "metadata": {"even": False}}]
        dry = pipeline.sync_records("gw", wanted, dry_run=True)
        assert dry["counts"] == {"missing": 0, "changed": 0, "unchanged": 1, "extra": 1}
        pipeline.sync_records("gw", wanted)
        assert pipeline.count_records("gw") == 1
