"""Lifecycle soak: messages through a running worker while the tenant's config keeps changing.

A gateway tenant (real `AsyncOpenAI` clients against the loopback test gateway) gets jobs of
EVERY messages, rewriting the same EVERY records each round, and its config changes halfway
through each job (a different timeout: a new provider, the old one closed once the calls in
flight through it return). After each round the process' open file descriptors, sockets and
RSS are sampled: descriptors and sockets must come back to where they were after the first
round, no provider may stay open but the current one (none before its first use), and the
conftest fails the test on any asyncio error or ResourceWarning. The curve is printed (run
with -s to see it).

The suite runs 2,000 messages with a change every 200. The full soak:

    VECPIPE_SOAK_MESSAGES=10000 VECPIPE_SOAK_EVERY=1000 \\
        .venv/bin/pytest tests/reliability/test_soak.py -s
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.reliability.support import gateway_factory
from tests.support.app import make_settings
from tests.support.gateway import Gateway
from tests.support.processes import eventually
from tests.support.sockets import open_sockets
from vecpipe.models import Record
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.openai_compat import OpenAICompatibleProvider
from vecpipe.resources import Resources, open_resources
from vecpipe.worker.background import stop_worker, worker_for

MESSAGES = int(os.environ.get("VECPIPE_SOAK_MESSAGES", "2000"))
EVERY = int(os.environ.get("VECPIPE_SOAK_EVERY", "200"))
TENANT = "soak"
MAX_CONCURRENCY = 4  # requests in flight per provider: its pool keeps at most this many
# The current provider's pool holds 0..MAX_CONCURRENCY keep-alive connections depending on how
# busy the last round was, and both ends of each live in this process: two sockets (fds) each.
# A provider leaked per change would add at least two per round and climb past this.
FD_SLACK = 2 * MAX_CONCURRENCY
RSS_GROWTH_MIB = 64  # the allocator keeps some of what it was given; a leak grows without end


@dataclass
class Sample:
    messages: int
    fds: int
    sockets: int
    rss_mib: float
    providers_open: int


def sample(messages: int, providers_open: int) -> Sample:
    rss_kib = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    fds = len(os.listdir("/proc/self/fd"))
    return Sample(messages, fds, open_sockets(), round(rss_kib / 1024, 1), providers_open)


def config(gateway: Gateway, round_number: int) -> dict[str, Any]:
    provider = {
        "kind": "openai",
        "base_url": gateway.base_url,
        "model": "soak-model",
        "api_key": "sk-soak",
        "dimensions": 16,
        "timeout_seconds": 20 + round_number % 2,  # another config: another provider
        "max_batch_size": 64,
        "max_concurrency": MAX_CONCURRENCY,
    }
    return {"primary": provider}


class CountingFactory:
    """The gateway factory, remembering every gateway provider it built."""

    def __init__(self, resources_settings: Any) -> None:
        self._build = gateway_factory(resources_settings.allowlisted_gateway_hosts)
        self.built: list[EmbeddingProvider] = []

    async def __call__(self, provider_config: Any) -> EmbeddingProvider:
        provider = await self._build(provider_config)
        self.built.append(provider)
        return provider

    def open_gateway_providers(self) -> int:
        return sum(
            1
            for p in self.built
            if isinstance(p, OpenAICompatibleProvider) and not getattr(p, "_closed", True)
        )


async def soak_round(
    resources: Resources, gateway: Gateway, round_number: int, changed: list[int]
) -> None:
    pipeline = resources.pipeline
    records = [
        Record(id=f"s{i}", text=f"round {round_number} text of record {i}") for i in range(EVERY)
    ]
    job_id = await pipeline.submit_job(TENANT, upserts=records)

    async def half_done() -> bool:
        status = await pipeline.job(TENANT, job_id)
        return status.done + status.unchanged + status.failed >= EVERY // 2

    await eventually(half_done, "half the round", 120)
    await pipeline.set_ai_config(TENANT, config(gateway, round_number + 1))  # mid-job
    changed.append(round_number)

    async def completed() -> bool:
        return (await pipeline.job(TENANT, job_id)).status == "completed"

    await eventually(completed, "the round's job", 120)
    status = await pipeline.job(TENANT, job_id)
    assert (status.done, status.failed) == (EVERY, 0), status.failures[:3]


async def sockets_settled(baseline: int, timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if open_sockets() <= baseline:
            return
        await asyncio.sleep(0.05)


async def test_soak_with_config_changes(tmp_path: Path, gateway: Gateway) -> None:
    settings = make_settings(
        tmp_path / "data",
        gateway_allowlist="127.0.0.1",
        secret_key="soak secret",
        embed_cache_items=500,  # bounded: every round's text is new
        worker_batch_size=64,
    )
    factory = CountingFactory(settings)
    samples: list[Sample] = []
    changed: list[int] = []
    sockets_before = open_sockets()
    async with open_resources(settings, provider_factory=factory) as resources:
        await resources.pipeline.set_ai_config(TENANT, config(gateway, 0))
        worker = worker_for(resources, settings=settings)
        task = asyncio.create_task(worker.run())
        try:
            for round_number in range(MESSAGES // EVERY):
                await soak_round(resources, gateway, round_number, changed)
                await asyncio.sleep(0.1)  # let the replaced provider's last calls return
                gateway.control.bodies.clear()  # the test gateway's request log is not ours
                gateway.control.headers.clear()
                if samples:  # the gateway, in this process, closes its side a moment later
                    await sockets_settled(samples[0].sockets)
                samples.append(sample((round_number + 1) * EVERY, factory.open_gateway_providers()))
        finally:
            await stop_worker(worker, task, 5.0)
    print_curve(samples)
    assert len(changed) == MESSAGES // EVERY
    assert len(factory.built) > len(changed)  # every change opened a provider...
    # ...and closed the one it replaced (0 open: the new one opens on its first use)
    assert all(s.providers_open <= 1 for s in samples)
    first = samples[0]
    assert max(s.fds for s in samples[1:]) <= first.fds + FD_SLACK, samples
    assert max(s.sockets for s in samples[1:]) <= first.sockets + FD_SLACK, samples
    assert samples[-1].rss_mib - samples[1].rss_mib < RSS_GROWTH_MIB, samples
    assert factory.open_gateway_providers() == 0  # all closed with the resources
    await sockets_settled(sockets_before)
    assert open_sockets() <= sockets_before  # and every connection with them


def print_curve(samples: list[Sample]) -> None:
    print(f"\nsoak: {MESSAGES} messages, config changed every {EVERY}")
    print(f"{'messages':>9} {'fds':>5} {'sockets':>8} {'rss MiB':>8} {'providers':>10}")
    for s in samples:
        print(f"{s.messages:>9} {s.fds:>5} {s.sockets:>8} {s.rss_mib:>8} {s.providers_open:>10}")
