"""Id injection: tenant ids outside the alphabet, record ids with control characters or
invalid UTF-8, and ids that look like paths, filters or queries, on every route taking one.

Tenant ids: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`, case-sensitive. Record ids: any printable
text up to VECPIPE_LIMIT_MAX_ID_LENGTH (512), percent-encoded in paths; control characters,
lone surrogates and invalid UTF-8 get 422. An id is data, never syntax: it is matched
exactly, never widened into a pattern, another path or another tenant.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from tests.security.conftest import ADMIN_TOKEN, METRICS_TOKEN, A, B, World
from tests.security.test_cross_tenant import ROUTES

BAD_TENANT_IDS = [  # as they appear in the raw path
    "a" * 65,
    "-acme",
    ".acme",
    "_acme",
    "acme%00",
    "acme%0A",
    "acme%20",
    "acme%2A",
    "acme%22",
    "%D0%B0cme",  # Cyrillic a
    "acme%FF",
    "%2E%2E",
    "acme%2Fbeta",
    "acme%5C..%5Cbeta",
    "acme%3Bbeta",
    "*",
]


def _tenant_rows() -> list[tuple[str, str, object]]:
    rows = []
    for route in ROUTES:
        if route.kind != "tenant":
            continue
        for bad in BAD_TENANT_IDS:
            url = route.path.format(t=bad, r="a1", j="0", k="0")
            rows.append((route.method, url, route.body))
    return rows


async def test_tenant_ids_outside_the_alphabet_never_reach_a_tenant(world: World) -> None:
    wrong = []
    for method, url, body in _tenant_rows():
        as_admin = await world.call(method, url, ADMIN_TOKEN, body)
        as_tenant = await world.call(method, url, world.tokens[A], body)
        if as_admin.status_code not in (404, 422) or as_tenant.status_code != 404:
            wrong.append((method, url, as_admin.status_code, as_tenant.status_code))
    assert not wrong, wrong
    header = {"X-Vecpipe-Tenant": "acme beta"}
    body = {"input": "hi", "model": "all-MiniLM-L6-v2"}
    embedded = await world.call("POST", "/v1/embeddings", ADMIN_TOKEN, body, header)
    assert embedded.status_code == 400  # OpenAI's status for an invalid request
    upper = f"/v1/tenants/{A.upper()}/records/a1"  # case-sensitive: another, empty tenant
    assert (await world.call("GET", upper, ADMIN_TOKEN)).status_code == 404
    assert (await world.call("GET", upper, world.tokens[A])).status_code == 404


BAD_RECORD_PATHS = [  # raw, percent-encoded as a client would send them
    "%FF",
    "a%FEb",
    "%C0%AF",  # overlong "/"
    "%ED%A0%80",  # a UTF-16 surrogate encoded as UTF-8
    "a%00b",
    "a%0Ab",
    "a%0D%0Ab",
    "a%1Bb",  # ESC: terminal escapes in logs
    "a%7Fb",
    "a%C2%85b",  # NEL (C1)
    "x" * 513,
]


async def test_record_ids_with_control_characters_or_invalid_utf8_get_422(world: World) -> None:
    wrong = []
    for raw in BAD_RECORD_PATHS:
        url = f"/v1/tenants/{A}/records/{raw}"
        for method in ("GET", "DELETE"):
            for token in (ADMIN_TOKEN, world.tokens[A]):
                response = await world.call(method, url, token)
                if response.status_code != 422:
                    wrong.append((method, raw, response.status_code))
    assert not wrong, wrong
    assert (await world.call("GET", f"/v1/tenants/{A}/records/a1", ADMIN_TOKEN)).status_code == 200


BAD_BODY_IDS = ["a\x00b", "a\nb", "a\x1b[31mb", "a\x7fb", "a\x85b", "\ud800", "a\udfffb", ""]


async def test_bad_record_ids_in_bodies_get_422_and_change_nothing(world: World) -> None:
    wrong = []
    for bad in BAD_BODY_IDS:
        bodies: list[dict[str, object]] = [
            {"upsert": [{"id": bad, "text": "x"}]},
            {"delete": [bad]},
        ]
        if any(0xD800 <= ord(c) <= 0xDFFF for c in bad):  # no text may hold one, ids or not
            bodies.append({"upsert": [{"id": "ok", "text": f"x{bad}"}]})
            bodies.append({"upsert": [{"id": "ok", "text": "x", "metadata": {"k": bad}}]})
            bodies.append({"upsert": [{"id": "ok", "text": "x", "metadata": {bad: 1}}]})
        for body in bodies:
            for path in ("records", "jobs"):
                response = await world.call(
                    "POST", f"/v1/tenants/{A}/{path}", world.tokens[A], body
                )
                if response.status_code != 422 or "error" not in response.json():
                    wrong.append((path, body, response.status_code))
    assert not wrong, wrong
    for field in ('"query": "\\ud800"', '"query": "x", "filter": {"k": "\\udc00"}'):
        raw = ("{" + field + "}").encode()
        response = await world.http.post(
            f"/v1/tenants/{A}/search",
            content=raw,
            headers={**world.auth(world.tokens[A]), "content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
    got = await world.call("GET", f"/v1/tenants/{A}/records/ok", ADMIN_TOKEN)
    assert got.status_code == 404


AWKWARD_IDS = [  # printable, so valid: they must be stored and found exactly as given
    'INJ-1" OR "1"="1',
    "INJ-2 {'$ne': null}",
    "INJ-3 tenant_id:beta",
    "INJ-4/../../beta/records/b1",
    "INJ-5 *",
    "INJ-6 %2F%00",
    "INJ-7 名前/ファイル",
    "INJ-8 \u202e\u200b",
    "INJ-9?x=1#frag",
    "INJ-10 " + "z" * 500,
]


async def test_awkward_but_printable_ids_are_data_not_syntax(world: World) -> None:
    upserts = [{"id": i, "text": f"injected text {n}"} for n, i in enumerate(AWKWARD_IDS)]
    stored = await world.call(
        "POST", f"/v1/tenants/{A}/records", world.tokens[A], {"upsert": upserts}
    )
    assert stored.json()["upserted"] == len(AWKWARD_IDS), stored.text
    for record_id in AWKWARD_IDS:
        url = httpx.URL(f"/v1/tenants/{A}/records/{quote(record_id, safe='')}")
        got = await world.http.get(url, headers=world.auth(world.tokens[A]))
        assert got.status_code == 200 and got.json()["id"] == record_id, (record_id, got.text)
        other = await world.http.get(
            httpx.URL(f"/v1/tenants/{B}/records/{quote(record_id, safe='')}"),
            headers=world.auth(world.tokens[B]),
        )
        assert other.status_code == 404
    # "INJ-4/../../beta/records/b1" is acme's own record, never beta's b1
    b1 = await world.call("GET", f"/v1/tenants/{B}/records/b1", ADMIN_TOKEN)
    assert b1.json()["text"].startswith("beta")
    hits = await world.call(
        "POST", f"/v1/tenants/{B}/search", world.tokens[B], {"query": "injected text", "limit": 50}
    )
    assert all(not h["id"].startswith("INJ") for h in hits.json()["results"])
    metrics = await world.call("GET", "/metrics", METRICS_TOKEN)
    assert metrics.status_code == 200
    assert "INJ-" not in metrics.text  # record ids are never metric labels
    deleted = await world.call(
        "POST", f"/v1/tenants/{A}/records", world.tokens[A], {"delete": AWKWARD_IDS}
    )
    assert deleted.json()["deleted"] == len(AWKWARD_IDS)


async def test_job_and_token_ids_are_matched_exactly(world: World) -> None:
    job = world.job_ids[A]
    for guess in (job.upper(), job[:-1], job + "%", "%", "*", f"{job}' OR '1'='1"):
        url = f"/v1/tenants/{A}/jobs/{quote(guess, safe='')}"
        assert (await world.call("GET", url, world.tokens[A])).status_code == 404, guess
    token_id = world.token_ids[B]
    for guess in (token_id, "%", "*", f"{token_id}' OR '1'='1"):
        url = f"/v1/tenants/{A}/tokens/{quote(guess, safe='')}"
        assert (await world.call("DELETE", url, ADMIN_TOKEN)).status_code == 404, guess
    still = await world.call("GET", f"/v1/tenants/{B}/ai-config", world.tokens[B])
    assert still.status_code == 200  # beta's token survived a revoke aimed through acme
