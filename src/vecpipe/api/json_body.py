"""Routes whose JSON body is read once, parsed once, and parsed off the event loop when large.

FastAPI parses a JSON body with `json.loads` on the event loop: 15 MiB takes 40-80 ms, and
fifty such bodies at once stalled /healthz for seconds (issue 12). `JSONBodyRoute` hands
its endpoint a `JSONBodyRequest`, whose `json()` parses a body over `OFFLOAD_BYTES` in a
worker thread and keeps the result, so the dependencies that look at the body
(deps.check_body_unicode) reuse the one parse instead of making their own.

`json.loads` holds the GIL for the whole call (one C call: no switch interval applies), so a
thread does not make a parse free, it moves it out of the loop's callbacks. Large parses
also run one at a time (`_ONE_PARSE_AT_A_TIME`): with several parse threads, the loop could
wait for the GIL behind each in turn (measured: /healthz at 450 ms with four 15 MiB parses
at once); one at a time, it waits for one parse at most (40-80 ms for 15 MiB). Parallel
parses would gain nothing: they would hold the one GIL in turn anyway.

The route also reads the body before FastAPI does, so that a limit refused while the body
streams in (body_limit.py) reaches the app's error handlers as itself, not as FastAPI's
"400 error parsing the body".
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import anyio.to_thread
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

OFFLOAD_BYTES = 1024 * 1024
_ONE_PARSE_AT_A_TIME = threading.Lock()  # waiting threads hold no GIL; any loop may use it


def _parse_alone(body: bytes) -> Any:
    with _ONE_PARSE_AT_A_TIME:
        return json.loads(body)


class JSONBodyRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) > OFFLOAD_BYTES:
                self._json = await anyio.to_thread.run_sync(_parse_alone, body)
            else:
                self._json = json.loads(body)
        return self._json


class JSONBodyRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def read_then_handle(request: Request) -> Response:
            request = JSONBodyRequest(request.scope, request.receive, request._send)
            with contextlib.suppress(ClientDisconnect):  # FastAPI's handler answers it
                await request.body()
            return await handler(request)

        return read_then_handle
