"""The pieces of api/deps.py: bearer parsing, comparisons, id decoding, the Unicode check."""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.requests import Request

from tests.support.app import FakeFactory, make_settings
from vecpipe import secrets as vp_secrets
from vecpipe.api import deps
from vecpipe.api.app import create_app
from vecpipe.api.ndjson import has_lone_surrogate
from vecpipe.errors import ValidationError


def _request(
    headers: dict[str, str] | None = None,
    raw_path: bytes | None = None,
    method: str = "GET",
    body: bytes = b"",
) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    if raw_path is not None:
        scope["raw_path"] = raw_path

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Bearer   abc  ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer    ", None),
        ("abc", None),
        ("", None),
    ],
)
def test_bearer_parsing(header: str, token: str | None) -> None:
    assert deps._bearer(_request({"Authorization": header})) == token


def test_token_comparison_is_exact_and_goes_through_compare_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(vp_secrets.hmac, "compare_digest", spy)
    assert vp_secrets.same_secret("secret", "secret")
    assert not vp_secrets.same_secret("secret", "secreT")
    assert not vp_secrets.same_secret("secret", "secret-but-longer")
    assert not vp_secrets.same_secret("", "secret")
    assert calls == [(32, 32)] * 4  # digests: the expected length is not compared either


@pytest.mark.parametrize(
    ("tenant_id", "valid"),
    [
        ("acme", True),
        ("a", True),
        ("A-b_c.9", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("acme\n", False),  # `$` alone would accept it
        ("-acme", False),
        (".acme", False),
        ("ac me", False),
        ("acme/x", False),
        ("\u0430cme", False),  # Cyrillic a
        ("", False),
    ],
)
def test_tenant_id_alphabet(tenant_id: str, valid: bool) -> None:
    assert deps.is_valid_tenant_id(tenant_id) is valid


@pytest.mark.parametrize(
    ("raw_path", "tenant_id", "expected"),
    [
        (b"/v1/tenants/acme/records/a%2Fb", "acme", b"a%2Fb"),
        (b"/v1/tenants/acme/records/a/b/c", "acme", b"a/b/c"),
        (b"/v1/tenants/ac%6De/records/x", "acme", b"x"),
        (b"/v1/tenants/records/records/x", "records", b"x"),
        (b"/prefix/v1/tenants/acme/records/%FF", "acme", b"%FF"),
        (b"/v1/tenants/acme/jobs/x", "acme", None),
    ],
)
def test_the_record_id_is_read_raw_from_the_path(
    raw_path: bytes, tenant_id: str, expected: bytes | None
) -> None:
    assert deps._raw_record_id(_request(raw_path=raw_path), tenant_id) == expected


@pytest.mark.parametrize(
    ("value", "lone"),
    [
        ("plain", False),
        ("emoji \U0001f600", False),
        ("\ud800", True),
        ({"k": ["x", {"deep": "a\udfffb"}]}, True),
        ({"\udc00": 1}, True),
        ([1, 2.5, None, True], False),
    ],
)
def test_lone_surrogates_are_found_anywhere(value: Any, lone: bool) -> None:
    assert has_lone_surrogate(value) is lone


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (json.dumps({"id": "\U0001f600"}).encode(), False),  # a pair: \ud83d\ude00
        (json.dumps({"id": "\ud800"}).encode(), True),
        (json.dumps({"id": "\\ud800"}).encode(), False),  # an escaped backslash, not an escape
        (b'{"id": "\\udfff"', False),  # not JSON: left to the body's own validation
        (b'{"id": "x"}', False),
    ],
)
async def test_body_unicode_check(body: bytes, refused: bool) -> None:
    request = _request(method="POST", body=body)
    if refused:
        with pytest.raises(ValidationError, match="surrogate"):
            await deps.check_body_unicode(request)
    else:
        await deps.check_body_unicode(request)


async def test_the_admin_token_check_runs_per_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path / "data", admin_token="the-admin-token-16")
    app = create_app(settings, provider_factory=FakeFactory())
    seen: list[int] = []
    real = vp_secrets.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append(len(a))
        return real(a, b)

    monkeypatch.setattr(vp_secrets.hmac, "compare_digest", spy)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ok = await http.get(
                "/v1/tenants/acme/ai-config", headers={"Authorization": "Bearer the-admin-token-16"}
            )
            bad = await http.get(
                "/v1/tenants/acme/ai-config", headers={"Authorization": "Bearer the-admin-token-1X"}
            )
    assert ok.status_code == 200 and bad.status_code == 401
    assert bad.headers["www-authenticate"] == "Bearer"
    assert seen == [32, 32]
