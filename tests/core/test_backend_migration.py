"""Switching a tenant's local backend (issue 18): to onnx-int8 re-embeds through a migration,
to onnx (the same vectors) does not. The real model; its exports are the session's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.support.app import make_settings
from tests.support.onnx_models import seed_models
from vecpipe.models import Record
from vecpipe.providers.local_backend import quantization_config
from vecpipe.resources import Resources, open_resources

pytestmark = pytest.mark.slow

TENANT = "acme"
TOPICS = ("apt sources", "kernel modules", "mail servers", "printing", "disk quotas", "locales")


def records() -> list[Record]:
    return [
        Record(id=f"r{i}", text=f"Section {i} explains {topic} on a Debian system, step by step.")
        for i, topic in enumerate(TOPICS * 2)
    ]


async def wait_until_done(resources: Resources) -> None:
    while True:
        status = await resources.pipeline.migration_status(TENANT)
        if status is not None and status["state"] == "done":
            return
        await asyncio.sleep(0.05)


async def test_torch_to_onnx_int8_reindexes(tmp_path: Path, onnx_models: Path) -> None:
    data = tmp_path / "data"
    seed_models(onnx_models, data)
    settings = make_settings(data, migration_grace_seconds=0, migration_poll_seconds=0.05)
    async with open_resources(settings) as resources:
        pipeline = resources.pipeline
        await pipeline.ingest(TENANT, records())
        torch_space = await pipeline.space_of(TENANT)
        assert torch_space.variant == ""

        config = {"primary": {"kind": "local", "backend": "onnx-int8"}}
        target = await pipeline.set_ai_config(TENANT, config)
        assert (target.model, target.dimension) == (torch_space.model, torch_space.dimension)
        assert target.variant and target != torch_space
        status = await pipeline.migration_status(TENANT)
        assert status is not None and status["state"] == "running"
        await wait_until_done(resources)

        assert await pipeline.space_of(TENANT) == target
        assert await resources.store.count(torch_space, TENANT) == 0
        assert await resources.store.count(target, TENANT) == len(records())
        hits = await pipeline.search(TENANT, "how do I set up printing?", limit=3)
        assert hits and "printing" in hits[0].text
        async with resources.providers.lease(TENANT) as provider:
            assert provider.space == target
            vector = np.array((await provider.embed(["printing"]))[0])
            assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    # the export was the session's: linked in, nothing exported under this data dir
    assert all(p.is_symlink() for p in (data / "models").iterdir() if not p.name.startswith("."))
    assert not [p for p in (data / "models").iterdir() if p.name.startswith(".all")]
    assert quantization_config() in " ".join(p.name for p in (data / "models").iterdir())


async def test_torch_to_onnx_keeps_the_space(tmp_path: Path, onnx_models: Path) -> None:
    data = tmp_path / "data"
    seed_models(onnx_models, data)
    async with open_resources(make_settings(data)) as resources:
        pipeline = resources.pipeline
        await pipeline.ingest(TENANT, records()[:3])
        space = await pipeline.space_of(TENANT)
        config = {"primary": {"kind": "local", "backend": "onnx"}}
        assert await pipeline.set_ai_config(TENANT, config) == space
        assert await pipeline.migration_status(TENANT) is None
        async with resources.providers.lease(TENANT) as provider:
            assert "onnx" in repr(provider.primary) and provider.space == space
        hits = await pipeline.search(TENANT, "kernel modules", limit=1)
        assert hits and hits[0].id == "r1"
