from __future__ import annotations

import socket

import pytest

from vecpipe.errors import ValidationError
from vecpipe.providers import url_policy
from vecpipe.providers.url_policy import GatewayUrlPolicy, HostResolutionError

STRICT = GatewayUrlPolicy(frozenset())


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "http://8.8.8.8/v1",
        "https://[2606:4700:4700::1111]/v1",
        "https://gateway.example.com:8443/v1",
        "HTTPS://API.OPENAI.COM/v1",
        "http://[::ffff:8.8.8.8]/v1",
    ],
)
def test_public_urls_pass(url: str) -> None:
    STRICT.check_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/v1", "loopback"),
        ("http://127.1/v1", "loopback"),
        ("http://2130706433/v1", "loopback"),
        ("http://0x7f000001/v1", "loopback"),
        ("http://localhost:8000/v1", "loopback"),
        ("http://LOCALHOST./v1", "loopback"),
        ("http://api.localhost/v1", "loopback"),
        ("http://[::1]/v1", "loopback"),
        ("http://10.1.2.3/v1", "private"),
        ("http://172.16.0.1/v1", "private"),
        ("http://192.168.1.10/v1", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/v1", "link-local"),
        ("http://[fc00::1]/v1", "private"),
        ("http://[::ffff:127.0.0.1]/v1", "loopback"),
        ("http://[::ffff:10.0.0.1]/v1", "private"),
        ("http://[::ffff:169.254.169.254]/v1", "link-local"),
        ("http://[2002:7f00:1::]/v1", "loopback"),
        ("http://0.0.0.0/v1", "unspecified"),
        ("http://[::]/v1", "unspecified"),
        ("http://224.0.0.1/v1", "multicast"),
        ("http://[ff02::1]/v1", "multicast"),
        ("http://240.0.0.1/v1", "reserved"),
        ("http://100.64.0.1/v1", "non-global"),
    ],
)
def test_internal_addresses_are_rejected(url: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as info:
        STRICT.check_url(url)
    assert "VECPIPE_GATEWAY_ALLOWLIST" in str(info.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/v1", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("example.com/v1", "http or https"),
        ("http:///v1", "no host"),
        ("http://user:hunter2@example.com/v1", "credentials"),
        ("http://sk-secret@example.com/v1", "credentials"),
        ("http://example.com:99999/v1", "not a valid URL"),
        ("http://exa mple.com/v1", "whitespace"),
        ("http://example.com/v1\n", "whitespace"),
    ],
)
def test_malformed_urls_are_rejected(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        STRICT.check_url(url)
    assert "hunter2" not in str(info.value)
    assert "sk-secret" not in str(info.value)


@pytest.mark.parametrize(
    ("allowlist", "url"),
    [
        ({"127.0.0.1"}, "http://127.0.0.1:8000/v1"),
        ({"localhost"}, "http://localhost:8000/v1"),
        ({"LocalHost"}, "http://localhost/v1"),
        ({"::1"}, "http://[::1]:8000/v1"),
        ({"[::1]"}, "http://[::1]:8000/v1"),
        ({"10.0.0.0/8"}, "http://10.20.30.40/v1"),
        ({"gateway.internal"}, "http://gateway.internal/v1"),
    ],
)
def test_allowlisted_hosts_pass(allowlist: set[str], url: str) -> None:
    GatewayUrlPolicy(frozenset(allowlist)).check_url(url)


def test_allowlist_is_exact() -> None:
    policy = GatewayUrlPolicy(frozenset({"127.0.0.1", "10.0.0.0/24"}))
    for url in ("http://127.0.0.2/", "http://10.0.1.1/", "http://localhost/"):
        with pytest.raises(ValidationError):
            policy.check_url(url)


def test_allowlist_does_not_excuse_bad_schemes_or_userinfo() -> None:
    policy = GatewayUrlPolicy(frozenset({"127.0.0.1"}))
    with pytest.raises(ValidationError, match="credentials"):
        policy.check_url("http://u:p@127.0.0.1/")
    with pytest.raises(ValidationError, match="http or https"):
        policy.check_url("gopher://127.0.0.1/")


def _fake_resolver(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    async def fake_resolve(host: str, port: int) -> list[url_policy.IPAddress]:
        if host not in answers:
            raise HostResolutionError(f"gateway host {host!r} does not resolve")
        import ipaddress

        return [ipaddress.ip_address(a) for a in answers[host]]

    monkeypatch.setattr(url_policy, "resolve", fake_resolve)


async def test_resolved_addresses_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(
        monkeypatch,
        {
            "public.example": ["93.184.216.34", "2606:2800:220:1::1"],
            "sneaky.example": ["93.184.216.34", "10.0.0.5"],
            "metadata.example": ["169.254.169.254"],
            "mapped.example": ["::ffff:127.0.0.1"],
        },
    )
    await STRICT.check_resolved("https://public.example/v1")
    for host, reason in [
        ("sneaky.example", "private"),
        ("metadata.example", "link-local"),
        ("mapped.example", "loopback"),
    ]:
        with pytest.raises(ValidationError, match=reason) as info:
            await STRICT.check_resolved(f"https://{host}/v1")
        assert host in str(info.value)


async def test_allowlisted_host_is_not_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(monkeypatch, {})
    await GatewayUrlPolicy(frozenset({"gateway.internal"})).check_resolved(
        "http://gateway.internal:8080/v1"
    )


async def test_resolution_into_allowlisted_network_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(monkeypatch, {"svc.cluster.local": ["10.96.0.12"]})
    policy = GatewayUrlPolicy(frozenset({"10.96.0.0/12"}))
    await policy.check_resolved("http://svc.cluster.local/v1")
    with pytest.raises(ValidationError):
        await STRICT.check_resolved("http://svc.cluster.local/v1")


async def test_real_resolver_sees_localhost_as_loopback() -> None:
    with pytest.raises(ValidationError, match="loopback"):
        await STRICT.check_resolved("http://localhost:9/v1")
    addresses = await url_policy.resolve("localhost", 80)
    assert addresses and all(a.is_loopback for a in addresses)


async def test_unresolvable_host_is_a_resolution_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing_getaddrinfo(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    import asyncio

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", failing_getaddrinfo)
    with pytest.raises(HostResolutionError, match=r"no-such-host\.example"):
        await STRICT.check_resolved("https://no-such-host.example/v1")


def test_repr_names_hosts_only() -> None:
    policy = GatewayUrlPolicy(frozenset({"gw.internal", "10.0.0.0/8", " "}))
    assert "gw.internal" in repr(policy)
    assert "10.0.0.0/8" in repr(policy)
