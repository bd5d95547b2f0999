"""Every error leaves the API as JSON with a fitting status, in one of two shapes.

- vecpipe's own routes: `{"error": {"code", "message"}}`; an invalid request is 422.
- the OpenAI-compatible routes (`OPENAI_PATHS`: /v1/embeddings): OpenAI's shape,
  `{"error": {"message", "type", "param", "code"}}`, and OpenAI's statuses: an invalid
  request is 400 (`invalid_request_error`), an input over the model's limit 400 with code
  `context_length_exceeded`, a bad key 401 (`invalid_api_key`), so OpenAI's clients raise
  the errors their users catch (BadRequestError, LiteLLM's ContextWindowExceededError).

401 carries `WWW-Authenticate: Bearer`; 429, 503 and 507 carry `Retry-After`; 405 carries
`Allow` with every method of the path (Starlette names only the first route's).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vecpipe import errors

log = logging.getLogger(__name__)

STATUS = {
    errors.QuotaExceeded: 429,
    errors.LimitExceeded: 413,
    errors.ValidationError: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
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


OPENAI_PATHS = frozenset({"/v1/embeddings"})
"""Routes that answer errors as OpenAI does (shape and statuses)."""

OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


INPUT_RULE = (
    "'input' must be a non-empty string, an array of 1-2048 non-empty strings, an array of "
    "token ids (integers >= 0), or an array of 1-2048 arrays of token ids"
)
"""One line for a bad `input`, instead of pydantic's error per member of the union."""


def speaks_openai(scope: Scope) -> bool:
    return scope.get("path") in OPENAI_PATHS


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    openai: bool = False,
    param: str | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, code, message, openai=openai, param=param),
        status_code=status,
        headers=headers,
    )


def error_body(
    status: int, code: str, message: str, *, openai: bool = False, param: str | None = None
) -> dict[str, dict[str, str | None]]:
    """vecpipe's `{"error": {"code", "message"}}`, or OpenAI's four fields."""
    if not openai:
        return {"error": {"code": code, "message": message}}
    if status == 401:
        code = "invalid_api_key"
    kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def openai_status(status: int, exc: errors.VecpipeError | None = None) -> int:
    """OpenAI answers every invalid request with 400 (a quota stays 429)."""
    if isinstance(exc, errors.QuotaExceeded):
        return 429
    return 400 if status in (413, 422) else status


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


def vecpipe_error_response(scope: Scope, exc: errors.VecpipeError) -> JSONResponse:
    """The answer to `exc` on the route of `scope`, in that route's shape."""
    openai = speaks_openai(scope)
    status = _status_for(exc)
    if openai:
        status = openai_status(status, exc)
    if status >= 500:
        log.warning("request failed: %s", exc.message)
    return error_response(
        status, exc.code, exc.message, _headers_for(status, exc), openai=openai, param=exc.param
    )


async def _vecpipe_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.VecpipeError)
    return vecpipe_error_response(request.scope, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    fields = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        fields.append(where.split(".")[0])
        problems.append(f"{where}: {error.get('msg')}")
    if speaks_openai(request.scope):
        param = fields[0] if fields and fields[0] != "body" else None
        message = INPUT_RULE if param == "input" else "; ".join(problems)
        return error_response(400, "invalid_request", message, openai=True, param=param)
    return error_response(422, "invalid_request", "; ".join(problems))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, errors.VecpipeError):
        # A body limit (api/body_limit.py) refused the body while FastAPI read it; FastAPI
        # turns any read error into "400 error parsing the body", the limit's answer is meant.
        return await _vecpipe_error(request, exc.__cause__)
    openai = speaks_openai(request.scope)
    if isinstance(exc.__cause__, RecursionError):
        # valid JSON too deep for json.loads (about 1,000 levels): say so, not "error parsing"
        message = "request body nested deeper than the JSON parser accepts"
        status = 400 if openai else 422
        return error_response(status, errors.ValidationError.code, message, openai=openai)
    code = {
        400: "invalid_request",
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
    }.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, code, str(exc.detail), headers, openai=openai)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes at this path: FastAPI makes one route per
    method, and the 405 it raises names the methods of the first that matched the path."""
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


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
            answer = error_response(
                500, "internal_error", "internal error", openai=speaks_openai(scope)
            )
            await answer(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.VecpipeError, _vecpipe_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(UnexpectedErrors)
