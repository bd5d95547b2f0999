"""Every /v1 route, called with no token, a bad token, another tenant's token and its own.

ROUTES is the table; `test_the_table_covers_every_v1_route` fails when a route is added to
the app without a row here. Paths name tenant acme's real record, job and token, so a leak
would show as anything but the uniform 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tests.security.conftest import ADMIN_TOKEN, GATEWAY_KEY, A, B, World
from tests.support.gateway import Fault
from vecpipe.api.app import create_app
from vecpipe.settings import Settings


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # as the app declares it
    path: str  # {t} tenant, {r} record, {j} job, {k} token id
    body: Any = None
    own_status: int = 200  # a tenant token on its own tenant's path
    kind: Literal["tenant", "embeddings", "operator"] = "tenant"
    admin_status: int | None = None  # None: any 2xx

    def url(self, world: World, tenant_id: str, owner: str | None = None) -> str:
        owner = owner or tenant_id
        record = f"{owner[0]}1"
        return self.path.format(
            t=tenant_id, r=record, j=world.job_ids.get(owner, "0"), k=world.token_ids.get(owner)
        )


LOCAL = {"primary": {"kind": "local", "model": "all-MiniLM-L6-v2"}}
RECORDS = {"upsert": [{"id": "new-1", "text": "hello there"}]}
EMBED = {"input": ["hi"], "model": "gw-embed"}  # the tenants are on the gateway model
T = "/v1/tenants/{tenant_id}"
ROUTES = [
    Route("GET", f"{T}/ai-config", "/v1/tenants/{t}/ai-config"),
    Route(
        "DELETE",
        f"{T}/ai-config/migration",
        "/v1/tenants/{t}/ai-config/migration",
        own_status=404,  # none is running yet
        admin_status=404,
    ),
    Route("POST", f"{T}/records", "/v1/tenants/{t}/records", RECORDS),
    Route("GET", f"{T}/records", "/v1/tenants/{t}/records?limit=5"),
    Route("POST", f"{T}/records/count", "/v1/tenants/{t}/records/count", {}),
    Route(
        "POST",
        f"{T}/records/delete",
        "/v1/tenants/{t}/records/delete",
        {"filter": {"nothing": "matches"}},  # the tenant's real record stays for later rows
    ),
    Route("GET", f"{T}/records/{{record_id}}", "/v1/tenants/{t}/records/{r}"),
    Route("DELETE", f"{T}/records/{{record_id}}", "/v1/tenants/{t}/records/{r}", own_status=204),
    Route("POST", f"{T}/sync", "/v1/tenants/{t}/sync", {"records": [], "dry_run": True}),
    Route(
        "POST",
        f"{T}/sync",
        "/v1/tenants/{t}/sync?job=true",  # the job form: 202, nothing in the scope to delete
        {"records": [], "scope": {"nothing": "matches"}},
        own_status=202,
    ),
    Route("POST", f"{T}/jobs", "/v1/tenants/{t}/jobs", RECORDS, own_status=202),
    Route("GET", f"{T}/jobs", "/v1/tenants/{t}/jobs"),
    Route("GET", f"{T}/jobs/{{job_id}}", "/v1/tenants/{t}/jobs/{j}"),
    Route("POST", f"{T}/search", "/v1/tenants/{t}/search", {"query": "private note"}),
    Route("POST", f"{T}/tokens", "/v1/tenants/{t}/tokens", own_status=403),
    Route("GET", f"{T}/tokens", "/v1/tenants/{t}/tokens", own_status=403),
    Route("DELETE", f"{T}/tokens/{{token_id}}", "/v1/tenants/{t}/tokens/{k}", own_status=403),
    Route("POST", "/v1/embeddings", "/v1/embeddings", EMBED, kind="embeddings"),
    # last of the tenant's rows: a config of another space starts a migration (its records
    # are copied in the background) and dropping the config moves the tenant's space
    Route("PUT", f"{T}/ai-config", "/v1/tenants/{t}/ai-config", LOCAL),
    Route("DELETE", f"{T}/ai-config", "/v1/tenants/{t}/ai-config", own_status=204),
    # operator routes span tenants: admin only, 403 to any tenant token whatever they name
    Route("GET", "/v1/status", "/v1/status", own_status=403, kind="operator"),
    Route("GET", "/v1/jobs", "/v1/jobs?tenant={t}", own_status=403, kind="operator"),
    Route("GET", "/v1/jobs/{job_id}", "/v1/jobs/{j}", own_status=403, kind="operator"),
    Route("GET", "/v1/dead-letters", "/v1/dead-letters", own_status=403, kind="operator"),
    Route(
        "POST",
        "/v1/dead-letters/replay",
        "/v1/dead-letters/replay",
        {"ids": ["0"]},  # no such dead letter: the admin replays nothing
        own_status=403,
        kind="operator",
    ),
    # the very last row: the admin's call offboards the tenant (core/offboard.py)
    Route("DELETE", T, "/v1/tenants/{t}", own_status=403),
]
NOT_FOUND = (404, {"error": {"code": "not_found", "message": "not found"}})
# /v1/embeddings answers in OpenAI's shape (api/errors.py): the same answer, its four fields
OPENAI_NOT_FOUND = (
    404,
    {
        "error": {
            "message": "not found",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
    },
)
FORBIDDEN = (403, {"error": {"code": "forbidden", "message": "this route needs the admin token"}})


def test_the_table_covers_every_v1_route(tmp_path: Any) -> None:
    paths = create_app(Settings(data_dir=tmp_path)).openapi()["paths"]
    declared = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/v1")
        for method in operations
    }
    assert declared == {(r.method, r.template) for r in ROUTES}


async def _acme_unchanged(world: World) -> None:
    """Tenant acme's config, records, job and token survived whatever was tried."""
    config = await world.call("GET", f"/v1/tenants/{A}/ai-config", ADMIN_TOKEN)
    assert config.json()["config"]["primary"]["kind"] == "openai"
    for record_id in ("a1", "a2"):
        got = await world.call("GET", f"/v1/tenants/{A}/records/{record_id}", ADMIN_TOKEN)
        assert got.status_code == 200, got.text
    job = await world.call("GET", f"/v1/tenants/{A}/jobs/{world.job_ids[A]}", world.tokens[A])
    assert job.status_code == 200, job.text
    listed = await world.call("GET", f"/v1/tenants/{A}/tokens", ADMIN_TOKEN)
    revoked = {t["token_id"]: t["revoked_at"] for t in listed.json()["tokens"]}
    assert revoked[world.token_ids[A]] is None


async def test_another_tenants_token_gets_the_same_404_everywhere(world: World) -> None:
    wrong = []
    for route in ROUTES:
        expected: tuple[int, Any] = FORBIDDEN if route.kind == "operator" else NOT_FOUND
        if route.kind == "embeddings":
            expected = OPENAI_NOT_FOUND
        for target in (A, "ghost-tenant"):  # an existing and a nonexistent tenant alike
            headers = {"X-Vecpipe-Tenant": target} if route.kind == "embeddings" else None
            url = route.url(world, target, owner=A)
            response = await world.call(route.method, url, world.tokens[B], route.body, headers)
            answer = (response.status_code, response.json())
            if answer != expected:
                wrong.append((route.method, route.template, target, answer))
    assert not wrong, wrong
    await _acme_unchanged(world)


BAD_AUTHORIZATION = [
    None,
    "Bearer not-the-admin-token",
    f"Bearer {ADMIN_TOKEN}x",
    f"Bearer {ADMIN_TOKEN[:-1]}",
    f"Basic {ADMIN_TOKEN}",  # the right secret under the wrong scheme
    ADMIN_TOKEN,
    "Bearer ",
    "Bearer vp_forged-token-that-was-never-issued",
    "Bearer vp_" + "x" * 5000,
]


async def test_missing_or_invalid_tokens_get_401_everywhere(world: World) -> None:
    revoked, revoked_id = await world.issue_token(A)
    await world.admin("DELETE", f"/v1/tenants/{A}/tokens/{revoked_id}")
    failures: list[tuple[str, ...]] = []
    for route in ROUTES:
        for authorization in [*BAD_AUTHORIZATION, f"Bearer {revoked}"]:
            headers = {} if authorization is None else {"Authorization": authorization}
            response = await world.call(
                route.method, route.url(world, A), None, route.body, headers
            )
            error = response.json().get("error", {})
            code = "invalid_api_key" if route.kind == "embeddings" else "unauthorized"  # OpenAI's
            if response.status_code != 401 or error.get("code") != code:
                failures.append((route.method, route.template, str(authorization), response.text))
            elif response.headers.get("www-authenticate") != "Bearer":
                failures.append((route.method, route.template, "no WWW-Authenticate"))
    assert not failures, failures
    await _acme_unchanged(world)


async def test_a_tenant_token_works_on_its_own_tenant(world: World) -> None:
    statuses = {}
    for route in ROUTES:  # in table order: the PUT row stores the config the DELETE row drops
        response = await world.call(route.method, route.url(world, B), world.tokens[B], route.body)
        statuses[route.method + " " + route.template] = response.status_code
    assert statuses == {r.method + " " + r.template: r.own_status for r in ROUTES}
    await _acme_unchanged(world)


async def test_the_admin_token_works_on_every_tenant(world: World) -> None:
    for route in ROUTES:
        headers = {"X-Vecpipe-Tenant": B} if route.kind == "embeddings" else None
        response = await world.call(
            route.method, route.url(world, B), ADMIN_TOKEN, route.body, headers
        )
        if route.admin_status is None:
            assert response.status_code < 300, (route, response.text)
        else:
            assert response.status_code == route.admin_status, (route, response.text)


async def test_embeddings_use_the_token_tenants_own_chain(world: World) -> None:
    gamma = "gamma"  # a third tenant, on the (fake) local model
    await world.admin("PUT", f"/v1/tenants/{gamma}/ai-config", LOCAL)
    gamma_token, _ = await world.issue_token(gamma)
    before = world.gateway.control.requests
    body = {"input": ["hello world"], "model": "gw-embed"}
    mine = await world.call("POST", "/v1/embeddings", world.tokens[A], body)
    assert mine.status_code == 200, mine.text
    assert mine.json()["model"] == "gw-embed" and len(mine.json()["data"][0]["embedding"]) == 16
    assert world.gateway.control.requests == before + 1  # acme's gateway, with acme's key
    again = {**body, "input": ["hello again"]}  # not "hello world": that one is cached now
    explicit = await world.call(
        "POST", "/v1/embeddings", world.tokens[A], again, {"X-Vecpipe-Tenant": A}
    )
    assert explicit.status_code == 200
    theirs = await world.call("POST", "/v1/embeddings", gamma_token, body)
    assert theirs.status_code == 404  # gamma's chain is the local model, not acme's gateway
    assert theirs.json()["error"]["code"] == "model_not_found"  # as OpenAI answers
    assert world.gateway.control.requests == before + 2
    local = {"input": "hi", "model": "all-MiniLM-L6-v2"}
    vectors = (await world.call("POST", "/v1/embeddings", gamma_token, local)).json()
    assert len(vectors["data"][0]["embedding"]) == 32
    assert world.gateway.control.requests == before + 2
    for status in (401, 400, 500):  # a gateway that echoes the key in its errors
        echo = f"Incorrect API key provided: {GATEWAY_KEY}"
        world.gateway.control.inject(*[Fault.http_status(status, message=echo)] * 8)
        fresh = {**body, "input": [f"not cached {status}"]}  # reaches the gateway
        failed = await world.call("POST", "/v1/embeddings", world.tokens[A], fresh)
        assert failed.status_code >= 400  # the teardown scan finds no key in it or the logs
        world.gateway.control.faults.clear()


async def test_search_never_crosses_tenants_even_filtering_on_tenant_id(world: World) -> None:
    for flt in (None, {"tenant_id": A}, {"k": "v"}, {"tenant_id": [A, B]}):
        body = {"query": "acme private note", "limit": 50, "filter": flt}
        response = await world.call("POST", f"/v1/tenants/{B}/search", world.tokens[B], body)
        assert response.status_code == 200, response.text
        ids = {hit["id"] for hit in response.json()["results"]}
        assert ids <= {"b1", "b2"}, (flt, ids)


async def test_every_search_option_stays_in_its_tenant(world: World) -> None:
    """Modes, like, vector queries, diversity, facets, id filters: B sees only B's records."""
    url = f"/v1/tenants/{B}/search"
    bodies: list[dict[str, Any]] = [
        {"query": "acme private note", "mode": "keyword", "filter": {"tenant_id": A}},
        {"query": "acme private note", "mode": "hybrid", "limit": 50},
        {"query": "acme private note", "mode": "keyword", "limit": 50},
        {"query": "note", "diversity": 0.9, "limit": 50, "facets": ["k", "tenant_id"]},
        {"vector": [0.25] * 16, "limit": 50, "filter": {"id": {"$in": ["a1", "a2", "b1"]}}},
        {"like": {"record_id": "b1"}, "limit": 50, "filter": {"$not": {"tenant_id": B}}},
        {"like": {"record_id": "b1"}, "limit": 50},
    ]
    for body in bodies:
        response = await world.call("POST", url, world.tokens[B], body)
        assert response.status_code == 200, (body, response.text)
        ids = {hit["id"] for hit in response.json()["results"]}
        assert ids <= {"b1", "b2"}, (body, ids)
        for counts in (response.json().get("facets") or {}).values():
            assert sum(item["count"] for item in counts) <= 2, (body, counts)
            assert A not in {item["value"] for item in counts}
    nowhere = await world.call("POST", url, world.tokens[B], {"like": {"record_id": "zz"}})
    assert nowhere.status_code == 404
    for record_id in ("a1", "a2"):  # acme's records are not B's to be like: as if none
        body = {"like": {"record_id": record_id}}
        response = await world.call("POST", url, world.tokens[B], body)
        assert (response.status_code, response.json()) == (404, nowhere.json())
