"""A pure ASGI middleware that bounds the memory request bodies may take.

Three limits, each answered with the API's JSON error before the body is read any further:
- one body over `max_body_bytes`: 413, by its Content-Length before reading a byte, or as
  soon as a chunked body has streamed past it;
- all bodies in flight (received and not yet answered) over `max_inflight_body_bytes`: 503
  with Retry-After. A body with a Content-Length reserves its length before it is read; a
  chunked one reserves its chunks as they arrive. Without this, 50 concurrent 15 MiB bodies
  took the server from 574 to 3,805 MiB and stalled /healthz for 10 s (issue 12);
- a JSON string longer than any field accepts (body_scan.py): 413 once it has streamed in.

A JSON-lines body on a route that streams it (ndjson.py: the sync route) is read line by
line, never held whole: it has its own size limit (`max_sync_stream_bytes`) and reserves
none of the in-flight budget.

The limits' errors are VecpipeErrors raised from `receive`: the route that is reading the
body answers them through the app's error handlers. When no route is reading yet (a
Content-Length over a limit), the middleware answers itself, in the same JSON shape.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vecpipe.api.body_scan import LongStringScan
from vecpipe.api.errors import error_body, openai_status, speaks_openai
from vecpipe.api.ndjson import is_streamed_body
from vecpipe.errors import LimitExceeded, Overloaded, VecpipeError
from vecpipe.settings import Limits

RETRY_AFTER_SECONDS = 1.0


def longest_accepted_string(limits: Limits) -> int:
    """UTF-8 bytes of the longest string any request field may hold (an id is counted in
    characters: up to 4 bytes each)."""
    return max(
        limits.max_text_bytes,
        limits.max_metadata_bytes,
        limits.max_query_bytes,
        4 * limits.max_id_length,
    )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.max_bytes = limits.max_body_bytes
        self.max_stream_bytes = limits.max_sync_stream_bytes
        self.budget = limits.max_inflight_body_bytes
        self.max_string = longest_accepted_string(limits)
        self.max_text = limits.max_text_bytes
        self.in_flight = 0  # bytes reserved by requests not yet answered (one event loop)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        streamed = is_streamed_body(scope)
        largest = self.max_stream_bytes if streamed else self.max_bytes
        if declared is not None and declared > largest:
            await _refuse(scope, send, self.too_large(largest))
            return
        if streamed:
            declared = None  # read as it streams, never held whole: nothing to reserve
        elif declared is not None and not self.fits(declared):
            await _refuse(scope, send, self.busy())
            return
        body = _Body(self, reserved=declared or 0, streamed=streamed)
        self.in_flight += body.reserved

        async def bounded_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.arrived(message.get("body", b""))
            return message

        async def tracking_send(message: Message) -> None:
            body.answered = body.answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except VecpipeError as exc:
            if exc is not body.refusal or body.answered:
                raise
            await _refuse(scope, send, exc)  # raised where no error handler answered it
        finally:
            self.in_flight -= body.reserved

    def fits(self, size: int) -> bool:
        return self.in_flight + size <= self.budget

    def too_large(self, largest: int | None = None) -> LimitExceeded:
        limit = self.max_bytes if largest is None else largest
        return LimitExceeded(f"request body larger than {limit} bytes")

    def busy(self) -> Overloaded:
        return Overloaded(
            "too many request bodies in flight; retry shortly", retry_after=RETRY_AFTER_SECONDS
        )

    def string_too_long(self) -> LimitExceeded:
        return LimitExceeded(
            f"the body holds a string longer than {self.max_string} bytes: "
            f"a record's text may have at most {self.max_text} bytes"
        )


class _Body:
    """One request's body as it arrives: its share of the budget and its scan."""

    def __init__(self, limits: BodyLimitMiddleware, reserved: int, streamed: bool) -> None:
        self.limits = limits
        self.streamed = streamed  # a JSON-lines body read as it arrives (ndjson.py)
        self.max_bytes = limits.max_stream_bytes if streamed else limits.max_bytes
        self.reserved = reserved  # a Content-Length's worth, or what a chunked body sent
        self.received = 0
        self.scan = LongStringScan(limits.max_string)
        self.refusal: VecpipeError | None = None
        self.answered = False

    def arrived(self, chunk: bytes) -> None:
        """Account for a chunk; raise the refusal when it breaks a limit."""
        self.received += len(chunk)
        # > 0 only for a body without Content-Length; a streamed body is never held whole
        grows = 0 if self.streamed else self.received - self.reserved
        if self.received > self.max_bytes:
            self.refusal = self.limits.too_large(self.max_bytes)
        elif grows > 0 and not self.limits.fits(grows):
            self.refusal = self.limits.busy()
        elif self.scan.feed(chunk):
            self.refusal = self.limits.string_too_long()
        if self.refusal is not None:
            raise self.refusal
        if grows > 0:
            self.limits.in_flight += grows
            self.reserved = self.received


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


async def _refuse(scope: Scope, send: Send, error: VecpipeError) -> None:
    status = 503 if isinstance(error, Overloaded) else 413
    openai = speaks_openai(scope)
    if openai:
        status = openai_status(status, error)
    body = json.dumps(error_body(status, error.code, error.message, openai=openai)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if isinstance(error, Overloaded):
        headers.append((b"retry-after", str(round(error.retry_after)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
