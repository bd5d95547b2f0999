"""The seed scenario: a synchronous loop embedding through a gateway, once per message.

The pattern vecpipe replaces (asyncio.run per call, an AsyncOpenAI client across loops)
logs "Event loop is closed" and leaks sockets. SyncPipeline must leave nothing behind.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from pathlib import Path

import pytest

from tests.conftest import asyncio_error_messages
from tests.support.app import make_settings
from tests.support.gateway import Gateway
from tests.support.sockets import open_sockets, wait_for_sockets_at_most
from vecpipe.errors import ClosedError
from vecpipe.models import Record
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
