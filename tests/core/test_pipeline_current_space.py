"""Changing a tenant's config learns its current space without loading its local model.

A gateway-only process used to load the default local model (seconds of CPU, ~300 MiB) on
the first config change of every new tenant, only to learn the space it was leaving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.app import make_settings
from tests.support.gateway import Gateway
from vecpipe.models import EmbeddingSpace, Record
from vecpipe.providers.local import LocalProvider
from vecpipe.resources import open_resources


def _gateway_config(gateway: Gateway) -> dict[str, Any]:
    provider = {"kind": "openai", "base_url": gateway.base_url, "model": "gw", "dimensions": 16}
    return {"primary": provider}


def _forbid_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: object, **kwargs: object) -> LocalProvider:
        raise AssertionError("the local model was opened to learn a space")

    monkeypatch.setattr(LocalProvider, "open", refuse)


async def test_a_new_tenant_changes_config_without_opening_the_default_model(
    tmp_path: Path, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path / "data", gateway_allowlist="127.0.0.1")
    async with open_resources(settings) as resources:
        _forbid_local_model(monkeypatch)
        space = await resources.pipeline.set_ai_config("fresh", _gateway_config(gateway))
        assert space == EmbeddingSpace("gw", 16)
        assert await resources.pipeline.migration_status("fresh") is None  # nothing to move


async def test_the_declared_space_finds_the_points_a_migration_must_move(
    tmp_path: Path, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path / "data", gateway_allowlist="127.0.0.1")
    async with open_resources(settings) as resources:
        pipeline = resources.pipeline
        await pipeline.ingest("moving", [Record(id="r1", text="a record on the local model")])
        with monkeypatch.context() as patch:
            _forbid_local_model(patch)  # only while the config changes
            await pipeline.set_ai_config("moving", _gateway_config(gateway))
        status = await pipeline.migration_status("moving")
        assert status is not None and status["state"] in ("running", "switched", "done")
