"""The worker on a gateway tenant: batching, fallback, wrong dimensions, clean close."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import asyncio_error_messages
from tests.support.app import make_settings
from tests.support.gateway import Fault, Gateway, GatewayControl, running_gateway
from tests.support.sockets import open_sockets, wait_for_sockets_at_most
from vecpipe.models import Record
from vecpipe.resources import open_resources
from vecpipe.worker.background import worker_for

API_KEY = "sk-worker-test-key-abcdef"


def provider(gateway: Gateway, model: str = "gw-model", **extra: object) -> dict[str, object]:
    return {
        "kind": "openai",
        "base_url": gateway.base_url,
        "model": model,
        "api_key": API_KEY,
        "dimensions": 16,
        **extra,
    }


def settings_for(tmp_path: Path):
    return make_settings(tmp_path / "data", gateway_allowlist="127.0.0.1", secret_key="k")


async def test_worker_processes_500_messages_and_closes_every_socket(
    tmp_path: Path, gateway: Gateway
) -> None:
    baseline = open_sockets()
    async with open_resources(settings_for(tmp_path)) as resources:
        pipeline = resources.pipeline
        await pipeline.set_ai_config("gw", {"primary": provider(gateway)})
        records = [Record(id=f"r{i}", text=f"gateway record {i}") for i in range(500)]
        job_id = await pipeline.submit_job("gw", upserts=records)
        await worker_for(resources).run_until_idle()
        status = await pipeline.job("gw", job_id)
        assert (status.status, status.done) == ("completed", 500)
        space = await pipeline.space_of("gw")
        assert await resources.store.count(space, "gw") == 500
    assert gateway.control.requests < 100  # batched, not one request per message
    assert asyncio_error_messages() == []
    assert wait_for_sockets_at_most(baseline) <= baseline


async def test_primary_down_fallback_stores_in_the_same_space(
    tmp_path: Path, gateway: Gateway
) -> None:
    async with open_resources(settings_for(tmp_path)) as resources:
        pipeline = resources.pipeline
        with running_gateway(GatewayControl()) as doomed_url:
            primary = provider(gateway) | {"base_url": doomed_url}
            await pipeline.set_ai_config(
                "gw", {"primary": primary, "fallbacks": [provider(gateway)]}
            )
        # the primary's gateway is gone now; the fallback serves the same space
        result = await pipeline.ingest("gw", [Record(id="a", text="through the fallback")])
        assert result.upserted == ["a"]
        async with pipeline.providers.lease("gw") as chain:
            assert list(chain.served_by.counts) == [chain.providers[1].name]
        assert (await pipeline.space_of("gw")).dimension == 16


async def test_wrong_dimension_from_gateway_stores_nothing_and_records_the_error(
    tmp_path: Path, gateway: Gateway
) -> None:
    async with open_resources(settings_for(tmp_path)) as resources:
        pipeline = resources.pipeline
        await pipeline.set_ai_config("gw", {"primary": provider(gateway)})
        gateway.control.inject(*[Fault.wrong_dimension() for _ in range(3)])
        job_id = await pipeline.submit_job("gw", upserts=[Record(id="a", text="bad dims")])
        await worker_for(resources).run_until_idle()
        status = await pipeline.job("gw", job_id)
        assert status.failed == 1 and "dimension" in (status.failures[0]["error"] or "")
        space = await pipeline.space_of("gw")
        assert await resources.store.count(space, "gw") == 0
        letters = await resources.queue.list_dead_letters()
        assert len(letters) == 1 and "dimension" in letters[0].reason
