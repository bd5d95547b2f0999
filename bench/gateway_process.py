"""The loopback test gateway (tests/support/gateway.py) in a child process.

In a thread of the bench process its JSON and vector work would take the GIL from the code
being measured; in its own process it only takes a CPU. The parent steers it over a pipe:
`stats()` reads its counters, `reset()` zeroes them.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any


def _serve(conn: Connection, latency: float, dimension: int) -> None:
    from tests.support.gateway import GatewayControl, running_gateway

    control = GatewayControl(latency_seconds=latency, default_dimension=dimension)
    with running_gateway(control) as url:
        conn.send(url)
        while (command := conn.recv()) != "stop":
            if command == "reset":
                control.reset()
                control.latency_seconds, control.default_dimension = latency, dimension
            conn.send(
                {
                    "requests": control.requests,
                    "inputs": control.inputs,
                    "max_in_flight": control.max_in_flight,
                }
            )
    conn.send("stopped")


class GatewayProcess:
    """`with GatewayProcess(latency=0.02, dimension=384) as gw: gw.url ...`"""

    def __init__(self, latency: float = 0.02, dimension: int = 384) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, latency, dimension), name="bench-gateway", daemon=True
        )
        self.latency = latency
        self.dimension = dimension
        self.url = ""

    def __enter__(self) -> GatewayProcess:
        self._process.start()
        if not self._conn.poll(60):
            self._process.kill()
            raise RuntimeError("the gateway process did not start")
        self.url = self._conn.recv()
        return self

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        answer: dict[str, Any] = self._conn.recv()
        return answer

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._conn.send("stop")
            if self._conn.poll(15):
                self._conn.recv()
        except (BrokenPipeError, EOFError):
            pass
        self._process.join(15)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()
