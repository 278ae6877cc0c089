"""JSON responses (orjson) and the one place that turns errors into the envelope."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from storeengine.core.errors import BadRequest, MethodNotAllowed, NotFound, StoreError, TooManyRequests
from storeengine.core.jsonio import dumps

log = logging.getLogger(__name__)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else dumps(content)  # bytes: encoded already


def json_response(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers=dict(headers) if headers else None)


LIST_SLICE = 500  # entities encoded per step: ~3 ms of orjson, which holds the GIL throughout


async def list_response(content: Any, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A list answer encoded slice by slice, yielding to the event loop between slices, so a
    10,000-entity answer does not hold up every other request for the whole encoding."""
    if not isinstance(content, list) or len(content) <= LIST_SLICE:
        return json_response(content, headers=headers)
    parts = []
    for start in range(0, len(content), LIST_SLICE):
        parts.append(dumps(content[start:start + LIST_SLICE])[1:-1])
        await asyncio.sleep(0)
    return JSONResponse(b"[" + b",".join(parts) + b"]", headers=headers)


def error_response(error: StoreError) -> JSONResponse:
    headers = {}
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return json_response(error.body(), error.status, headers)


async def on_store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: StoreError
    if exc.status_code == 404:
        error = NotFound("No such route")
    elif exc.status_code == 405:
        error = MethodNotAllowed()
    else:
        error = StoreError(exc.detail if isinstance(exc.detail, str) else None)
        error.status = exc.status_code
    response = error_response(error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def on_disconnect(request: Request, exc: Exception) -> Response:
    """The client left before its body arrived: nothing was done, and nobody reads the answer."""
    log.info("client left during its request's body: %s %s", request.method, request.url.path)
    return error_response(BadRequest("The client disconnected before its request's body arrived"))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(StoreError())


EXCEPTION_HANDLERS = {StoreError: on_store_error, HTTPException: on_http_error, ClientDisconnect: on_disconnect,
                      Exception: on_unexpected}
