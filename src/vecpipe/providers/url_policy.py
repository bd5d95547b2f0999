"""Which gateway URLs a tenant may name.

A tenant-supplied `base_url` makes the service send HTTP requests, with an API key, wherever
the tenant points it. Without a policy that is server-side request forgery: the cloud
metadata endpoint (169.254.169.254), the admin port of a neighbouring service, the loopback
interface. `GatewayUrlPolicy` rejects URLs whose host is, or resolves to, an address that is
not globally routable, unless the operator allowlisted the host (`VECPIPE_GATEWAY_ALLOWLIST`:
host names, IP literals or CIDR networks).

`check_url` is static and cheap (use it when a config is saved); `check_resolved` also resolves
the host and checks every address (use it right before connecting). What neither can stop is a
DNS answer that changes between the check and the connection (rebinding); the check narrows the
window, it does not close it.

Messages name the host, never the URL: a URL may carry credentials.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

from vecpipe.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HostResolutionError(ValidationError):
    """The gateway host does not resolve (now). May be temporary; callers decide."""


class GatewayUrlPolicy:
    """Rejects gateway URLs that point at private, loopback or otherwise internal addresses."""

    def __init__(self, allowlist: Iterable[str] = frozenset()) -> None:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in allowlist:
            item = _normalize_host(entry)
            if not item:
                continue
            if "/" in item:
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                    continue
                except ValueError:
                    pass
            hosts.add(item)
        self._hosts = frozenset(hosts)
        self._networks = tuple(networks)

    def __repr__(self) -> str:
        hosts, networks = sorted(self._hosts), [str(n) for n in self._networks]
        return f"GatewayUrlPolicy(hosts={hosts!r}, networks={networks!r})"

    def check_url(self, url: str) -> None:
        """Static checks: scheme, host, no userinfo, and no internal IP literal."""
        parts = _parse(url)
        host = _normalize_host(parts.hostname or "")
        if self._host_allowed(host):
            return
        if host == "localhost" or host.endswith(".localhost"):
            raise ValidationError(
                f"gateway host {host} is loopback; "
                "add the host to VECPIPE_GATEWAY_ALLOWLIST to allow it"
            )
        address = _ip_literal(host)
        if address is not None:
            self._check_address(host, address)

    async def check_resolved(self, url: str) -> None:
        """`check_url`, then resolve the host and reject it if any address is internal."""
        self.check_url(url)
        parts = _parse(url)
        host = _normalize_host(parts.hostname or "")
        if self._host_allowed(host):
            return
        for address in await resolve(host, parts.port or _DEFAULT_PORTS[parts.scheme]):
            self._check_address(host, address)

    def _host_allowed(self, host: str) -> bool:
        if host in self._hosts:
            return True
        address = _ip_literal(host)
        return address is not None and self._address_allowed(address)

    def _address_allowed(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self._networks)

    def _check_address(self, host: str, address: IPAddress) -> None:
        if self._address_allowed(address):
            return
        reason = forbidden_reason(address)
        if reason is not None:
            where = host if host == str(address) else f"{host} ({address})"
            raise ValidationError(
                f"gateway host {where} is a {reason} address; "
                "add the host to VECPIPE_GATEWAY_ALLOWLIST to allow it"
            )


def forbidden_reason(address: IPAddress) -> str | None:
    """Why `address` must not be a gateway without an allowlist entry, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return forbidden_reason(embedded)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("non-global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, through the running loop's resolver."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "invalid name"
        raise HostResolutionError(f"gateway host {host!r} does not resolve: {reason}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        literal = str(sockaddr[0]).split("%", 1)[0]
        addresses.append(ipaddress.ip_address(literal))
    if not addresses:
        raise HostResolutionError(f"gateway host {host!r} does not resolve")
    return addresses


def _parse(url: str) -> SplitResult:
    if not isinstance(url, str) or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValidationError("gateway URL must be a string without whitespace")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ValidationError("gateway URL is not a valid URL") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise ValidationError("gateway URL must use http or https")
    if "@" in parts.netloc:
        raise ValidationError("gateway URL must not contain credentials; use the api_key field")
    if not parts.hostname:
        raise ValidationError("gateway URL has no host")
    return parts._replace(scheme=parts.scheme.lower())


def _normalize_host(host: str) -> str:
    return host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def _ip_literal(host: str) -> IPAddress | None:
    """The address `host` denotes literally, including legacy IPv4 forms like `127.1`."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if host and all(ch in "0123456789abcdefx." for ch in host) and host[0].isdigit():
        try:  # inet_aton accepts what resolvers accept: 2130706433, 0x7f.1, 127.1
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None
