"""The API's answer to an error no handler expected: a JSON 500 that ends there."""

from __future__ import annotations

import logging

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.support.app import FakeFactory
from vecpipe.api.app import create_app
from vecpipe.settings import Settings


async def test_an_unexpected_error_is_a_json_500_and_goes_no_further(
    settings: Settings, fake_factory: FakeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The server never sees the exception: uvicorn would close a keep-alive connection
    that had its answer already, and log the whole traceback again."""
    app = create_app(settings, provider_factory=fake_factory)

    async def boom() -> None:
        raise RuntimeError("a bug, with a detail no caller should see")

    app.add_api_route("/boom", boom)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(  # raise_app_exceptions: an exception that escapes fails the test
            transport=httpx.ASGITransport(app=manager.app, raise_app_exceptions=True),
            base_url="http://vecpipe.test",
        ) as http,
    ):
        with caplog.at_level(logging.ERROR, logger="vecpipe.api.errors"):
            response = await http.get("/boom")
        assert response.status_code == 500
        assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
        assert [r.getMessage() for r in caplog.records] == ["unhandled error"]
        assert (await http.get("/healthz")).status_code == 200
