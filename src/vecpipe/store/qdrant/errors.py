"""What a failed qdrant-client call says, fit for a StoreError: one bounded line, no secret.

qdrant-client raises `UnexpectedResponse` for a non-2xx answer (its body is the server's
JSON `{"status": {"error": ...}}`, or a proxy's page), `ResponseHandlingException` around
httpx's transport errors, and plain `ValueError`/`RuntimeError` in local mode.
"""

from __future__ import annotations

import json

from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

MAX_REASON = 200


def describe_error(exc: BaseException, secret: str = "") -> str:
    """The reason, first line, with `secret` scrubbed before the text is cut to length."""
    if isinstance(exc, UnexpectedResponse):
        text = f"HTTP {exc.status_code} {_server_message(exc)}"
    else:
        source = exc.source if isinstance(exc, ResponseHandlingException) else exc
        message = str(source).strip()
        text = f"{type(source).__name__}: {message}" if message else type(source).__name__
    if secret:
        text = text.replace(secret, "***")
    lines = text.splitlines()
    return lines[0][:MAX_REASON] if lines else ""


def is_not_found(exc: BaseException) -> bool:
    """A missing collection: a 404 from a server, a ValueError from local mode."""
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code == 404
    return isinstance(exc, ValueError) and "not found" in str(exc).lower()


def _server_message(exc: UnexpectedResponse) -> str:
    try:
        return str(json.loads(exc.content)["status"]["error"])
    except (ValueError, KeyError, TypeError):
        return exc.reason_phrase
