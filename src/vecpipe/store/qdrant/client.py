"""How a QdrantStore gets its client (made on first use, on the running loop) and how it
names where it points, never with a secret."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr
from qdrant_client import AsyncQdrantClient

ClientFactory = Callable[[], AsyncQdrantClient]


def client_factory(
    client: AsyncQdrantClient | ClientFactory | None,
    url: str | None,
    api_key: SecretStr | None,
    location: str | Path | None,
    options: Mapping[str, Any],
) -> ClientFactory:
    if isinstance(client, AsyncQdrantClient):
        ready = client
        return lambda: ready
    if client is not None:
        return client
    if url is not None:
        key = api_key.get_secret_value() if api_key is not None else None
        # check_compatibility would start a thread doing a blocking request at construction.
        kwargs = {"check_compatibility": False, **options}
        return lambda: AsyncQdrantClient(url=url, api_key=key, **kwargs)
    if str(location) == ":memory:":
        return lambda: AsyncQdrantClient(location=":memory:")
    return lambda: AsyncQdrantClient(path=str(location))


def describe_target(
    client: AsyncQdrantClient | ClientFactory | None, url: str | None, location: str | Path | None
) -> str:
    """Where the store points, for reprs: a URL without its user info, never the key."""
    if url is not None:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        return repr(urlunsplit((parts.scheme, host, parts.path, "", "")))
    if location is not None:
        return f"local={str(location)!r}"
    return "client"
