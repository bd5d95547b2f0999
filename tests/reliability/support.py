"""Reliability-only helpers: a fast gateway factory, a queue spy, a readiness-check counter,
a port that can refuse.

Polling (`eventually`) and worker subprocesses (`WorkerProcess`) are the shared ones in
tests/support/processes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.support.app import FAKE_DIMENSION
from tests.support.fake_provider import FakeProvider
from tests.support.server import free_port
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig
from vecpipe.providers.kinds.openai import OpenAIProviderConfig
from vecpipe.providers.manager import ProviderFactory
from vecpipe.providers.openai_compat import OpenAICompatibleProvider, RetryPolicy
from vecpipe.providers.url_policy import GatewayUrlPolicy
from vecpipe.queue.base import Delivery, MessageQueue
from vecpipe.resources import Resources

# One batch is tried twice inside the provider, quickly; a Retry-After over 0.2 s is left to
# the worker (the provider gives up and hands the server's delay on).
FAST_RETRY = RetryPolicy(
    max_attempts=2, total_seconds=5.0, base_delay=0.01, max_delay=0.02, max_retry_after=0.2
)


def gateway_factory(allowlist: frozenset[str], retry: RetryPolicy = FAST_RETRY) -> ProviderFactory:
    """Gateway providers with small retry settings; a fake one for the default local model."""
    policy = GatewayUrlPolicy(allowlist)

    async def build(config: ProviderConfig) -> EmbeddingProvider:
        if not isinstance(config, OpenAIProviderConfig):
            return FakeProvider(space=EmbeddingSpace(config.model, FAKE_DIMENSION))
        return await OpenAICompatibleProvider.open(config, policy=policy, retry=retry)

    return build


@dataclass
class QueueSpy:
    """Records the worker's retry, ack and release calls on a queue (then passes them on)."""

    queue: MessageQueue
    retries: list[tuple[float, str]] = field(default_factory=list)
    acks: int = 0
    released: int = 0

    def install(self) -> QueueSpy:
        retry, ack, release = self.queue.retry, self.queue.ack, self.queue.release

        async def spy_retry(delivery: Delivery, delay: float, reason: str) -> None:
            self.retries.append((delay, reason))
            await retry(delivery, delay, reason)

        async def spy_ack(deliveries: Sequence[Delivery]) -> None:
            self.acks += len(deliveries)
            await ack(deliveries)

        async def spy_release(deliveries: Sequence[Delivery]) -> None:
            self.released += len(deliveries)
            await release(deliveries)

        self.queue.retry = spy_retry  # type: ignore[method-assign]
        self.queue.ack = spy_ack  # type: ignore[method-assign]
        self.queue.release = spy_release  # type: ignore[method-assign]
        return self


class ReadyProbes:
    """Counts the store's readiness checks (the worker's, while it pauses, and /readyz's)."""

    def __init__(self, resources: Resources) -> None:
        self.calls = 0
        check = resources.store.check_ready

        async def counting() -> None:
            self.calls += 1
            await check()

        resources.store.check_ready = counting  # type: ignore[method-assign]


class TcpSwitch:
    """A loopback port that forwards to `target_port` while on and refuses connections while off.

    Owned by the test's event loop: `off()` and `aclose()` close every link they opened.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()

    async def on(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def off(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        links = list(self._links)
        for task in links:
            task.cancel()
        await asyncio.gather(*links, return_exceptions=True)

    async def aclose(self) -> None:
        await self.off()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._links.discard(task)
            for side in (upstream, writer):
                if side is not None:
                    side.close()
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await side.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
