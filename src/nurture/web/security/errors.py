"""JSON error bodies (``code``, ``message``, ``field``) and the app's exception handlers.

Server errors get a generic body; the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nurture.accounts import logins, permissions
from nurture.errors import Conflict, NotFound, NurtureError, ValidationError
from nurture.web.security.config import is_https, security_config
from nurture.web.security.headers import DEFAULT_CSP, header_items

log = logging.getLogger(__name__)


#: the error code of an HTTP status when the error names none
STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    422: "invalid",
    429: "too_many_requests",
}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "field": field}, status_code=status, headers=headers
    )


def error_status(exc: NurtureError) -> int:
    if isinstance(exc, ValidationError):
        return 422
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, permissions.Forbidden):
        return 403
    if isinstance(exc, logins.LoginRefused):
        return 429 if exc.reason == "locked" else 401
    return 400


async def nurture_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NurtureError)
    headers: dict[str, str] = {}
    if isinstance(exc, logins.LoginRefused):
        seconds = exc.retry_after_seconds(security_config(request).clock())
        if seconds is not None:
            headers["Retry-After"] = str(seconds)
    return error_response(error_status(exc), exc.code, exc.message, exc.field, headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail: Any = exc.detail
    if isinstance(detail, dict) and "message" in detail:
        code = str(detail.get("code") or STATUS_CODES.get(exc.status_code, "error"))
        message = str(detail["message"])
        field_name = detail.get("field")
    else:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = str(detail)
        field_name = None
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return error_response(exc.status_code, code, message, field_name, exc.headers)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    """500 with a generic body; the traceback goes to the log, never to the client."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    response = error_response(
        500, "internal_error", "internal server error; the details were logged on the server"
    )
    # This response is sent outside the other middlewares: add the headers here.
    for name, value in header_items(DEFAULT_CSP, is_https(request)):
        response.headers[name] = value
    return response
