"""Every error leaves the API as {"error": {"code", "message"}} with a fitting status.

401 carries `WWW-Authenticate: Bearer`; 429, 503 and 507 carry `Retry-After`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vecpipe import errors

log = logging.getLogger(__name__)

STATUS = {
    errors.QuotaExceeded: 429,
    errors.LimitExceeded: 413,
    errors.ValidationError: 422,
    errors.NotFound: 404,
    errors.Forbidden: 403,
    errors.AuthError: 401,
    errors.ConfigError: 422,
    errors.BadProviderResponse: 502,
    errors.TransientProviderError: 503,
    errors.ProviderError: 502,
    errors.StorageFull: 507,
    errors.StoreError: 503,
    errors.StoreLocked: 503,
    errors.QueueError: 503,
    errors.Overloaded: 503,
    errors.ClosedError: 503,
}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _status_for(exc: errors.VecpipeError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def _headers_for(status: int, exc: errors.VecpipeError) -> dict[str, str] | None:
    """401 names the scheme; 429, 503 and 507 say when to come back."""
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status in (429, 503, 507):
        retry_after = getattr(exc, "retry_after", None)
        return {"Retry-After": str(max(1, round(retry_after or 1)))}
    return None


async def _vecpipe_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.VecpipeError)
    status = _status_for(exc)
    if status >= 500:
        log.warning("request failed: %s", exc.message)
    return error_response(status, exc.code, exc.message, _headers_for(status, exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {error.get('msg')}")
    return error_response(422, "invalid_request", "; ".join(problems))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, errors.VecpipeError):
        # A body limit (api/body_limit.py) refused the body while FastAPI read it; FastAPI
        # turns any read error into "400 error parsing the body", the limit's answer is meant.
        return await _vecpipe_error(request, exc.__cause__)
    if isinstance(exc.__cause__, RecursionError):
        # valid JSON too deep for json.loads (about 1,000 levels): say so, not "error parsing"
        message = "request body nested deeper than the JSON parser accepts"
        return error_response(422, errors.ValidationError.code, message)
    code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error"
    )
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


class UnexpectedErrors:
    """Answers an exception no handler took with the JSON 500, and keeps it there.

    Starlette's outermost middleware would answer it too, but then re-raise it to the server,
    and uvicorn, finding the response sent, closes the connection (a keep-alive client sees a
    reset) and logs the whole traceback. Here the exception ends with one log record; only
    one raised after the response started (nothing left to answer with) goes further.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            log.exception("unhandled error")
            await error_response(500, "internal_error", "internal error")(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.VecpipeError, _vecpipe_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(UnexpectedErrors)
