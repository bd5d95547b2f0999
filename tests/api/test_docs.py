"""/docs and /redoc work offline: every asset they reference is served by vecpipe itself."""

from __future__ import annotations

import re

import httpx
import pytest

REFERENCE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")
EXTERNAL = re.compile(r"(?i)\b(?:https?:)?//[a-z0-9.-]+")


def references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_reference_no_external_asset(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not EXTERNAL.search(html), EXTERNAL.findall(html)  # no CDN, no Google Fonts
    refs = references(html)
    assert "/openapi.json" in refs
    assets = [ref for ref in refs if ref.startswith("/docs-assets/")]
    assert len(assets) >= 2  # the script (and stylesheet) plus the icon
    for ref in refs:
        assert ref.startswith("/"), ref  # same origin
        served = await client.get(ref)
        assert served.status_code == 200, ref
        assert len(served.content) > 0


async def test_the_assets_are_the_real_bundles_and_pull_in_nothing_else(
    client: httpx.AsyncClient,
) -> None:
    swagger = await client.get("/docs-assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in swagger.text
    redoc = await client.get("/docs-assets/redoc.standalone.js")
    assert "Redoc" in redoc.text
    css = (await client.get("/docs-assets/swagger-ui.css")).text
    assert not re.search(r"(?i)url\(\s*['\"]?(?:https?:)?//", css)
    assert not re.search(r"(?i)@import", css)


async def test_swagger_ui_is_configured_for_offline_use(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert '"validatorUrl": null' in html  # no badge fetched from the online validator
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert not any(path.startswith(("/docs", "/redoc")) for path in schema["paths"])
    assert "/v1/status" in schema["paths"] and "/v1/jobs" in schema["paths"]
