"""Error bodies of the API: ``{"error": {"code": …, "message": …, "field": …}}``.

:func:`install_api_errors` wraps the exception handlers already on the app (those of
:func:`nurture.web.security.install.install_security`) so that responses under ``/api/`` carry the
nested shape, while the rest of the site keeps its own. FastAPI's request validation
errors become 422 with the same shape, naming the parameter or body field at fault, and
database errors caused by a value the database cannot store (out of range, a NUL byte)
are 422, not 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nurture.errors import NurtureError
from nurture.web.api.strict import RefusedBody, body_problem
from nurture.web.security.errors import STATUS_CODES, error_status

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
Handler = Callable[[Request, Exception], Awaitable[Response] | Response]

_STATUS_CODES = {**STATUS_CODES, 500: "internal_error"}
_DROP_HEADERS = {"content-length", "content-type"}


def is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "field": field}},
        status_code=status,
        headers=headers,
    )


def _nest(response: Response) -> Response:
    """Re-shape a flat ``{"code", "message", "field"}`` JSON body as ``{"error": {…}}``."""
    if response.status_code in (204, 304):
        return response
    try:
        body = json.loads(bytes(response.body))
    except (ValueError, AttributeError):
        body = None
    if isinstance(body, dict) and "error" in body and len(body) == 1:
        return response
    if isinstance(body, dict) and "message" in body:
        code = str(body.get("code") or _STATUS_CODES.get(response.status_code, "error"))
        message = str(body["message"])
        field = body.get("field")
    else:
        code = _STATUS_CODES.get(response.status_code, "error")
        message = str(body.get("detail", body) if isinstance(body, dict) else body)
        field = None
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROP_HEADERS}
    return error_response(
        response.status_code, code, message, field if isinstance(field, str) else None, headers
    )


AsyncHandler = Callable[[Request, Exception], Awaitable[Response]]


def _wrap(original: Handler | None, fallback_status: int) -> AsyncHandler:
    async def handler(request: Request, exc: Exception) -> Response:
        if original is not None:
            result = original(request, exc)
            response: Response
            if isinstance(result, Response):
                response = result
            else:
                response = await result
        else:
            response = _default(exc, fallback_status)
        if response.status_code == 405:
            response.headers["Allow"] = allowed_methods(request)
        return _nest(response) if is_api(request) else response

    return handler


def allowed_methods(request: Request) -> str:
    """Every method some route of the app answers at this path (the ``Allow`` of a 405)."""
    methods: set[str] = set()
    path = request.scope.get("path", "")
    pending: list[Any] = list(request.app.router.routes)
    while pending:
        route = pending.pop()
        candidates = getattr(route, "effective_candidates", None)
        if callable(candidates):  # a router included in another (FastAPI ≥ 0.16x)
            pending.extend(candidates())
            continue
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            original = getattr(route, "original_route", route)
            methods.update(getattr(original, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _default(exc: Exception, status: int) -> Response:
    if isinstance(exc, NurtureError):
        return JSONResponse(exc.as_dict(), status_code=error_status(exc))
    if isinstance(exc, StarletteHTTPException):
        return JSONResponse(
            {"code": _STATUS_CODES.get(exc.status_code, "error"), "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )
    log.error("unhandled error", exc_info=exc)
    return JSONResponse(
        {"code": "internal_error", "message": "internal server error"}, status_code=500
    )


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not is_api(request):
        return await request_validation_exception_handler(request, exc)
    problem = body_problem(request)
    if problem is not None:
        code = "bad_request" if problem.status == 400 else "invalid"
        return error_response(problem.status, code, problem.message, problem.field)
    errors = exc.errors()
    if not errors:
        return error_response(422, "invalid", "invalid request")
    first = errors[0]
    field = "body" if first.get("type") == "json_invalid" else _location(first.get("loc", ()))
    message = f"{field}: {first.get('msg', 'invalid value')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return error_response(422, "invalid", message, field)


class NestErrorBodiesMiddleware:
    """Re-shapes error bodies that middlewares send themselves (the 413 of the body size
    limit) for ``/api/`` paths. Only 4xx JSON responses are buffered; others stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                json_body = headers.get(b"content-type", b"").startswith(b"application/json")
                if message["status"] == 413 and json_body:
                    start = message
                    return
                await send(message)
            elif start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await _send_nested(start, b"".join(chunks), send)
            else:
                await send(message)

        await self.app(scope, receive, capture)


async def _send_nested(start: Message, body: bytes, send: Send) -> None:
    try:
        flat = json.loads(body)
    except ValueError:
        flat = None
    if isinstance(flat, dict) and "error" not in flat:
        body = json.dumps(
            {
                "error": {
                    "code": str(flat.get("code") or _STATUS_CODES.get(start["status"], "error")),
                    "message": str(flat.get("message", "")),
                    "field": flat.get("field") if isinstance(flat.get("field"), str) else None,
                }
            }
        ).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def install_api_errors(app: FastAPI) -> None:
    """Wrap the app's handlers so API responses use the nested error shape."""
    app.add_middleware(NestErrorBodiesMiddleware)
    handlers: dict[Any, Handler] = dict(app.exception_handlers)
    nurture_original = handlers.get(NurtureError)
    http_original = handlers.get(StarletteHTTPException)
    server_original = handlers.get(Exception)
    app.add_exception_handler(NurtureError, _wrap(nurture_original, 400))
    app.add_exception_handler(StarletteHTTPException, _wrap(http_original, 500))
    app.add_exception_handler(RequestValidationError, _validation_handler)
    wrapped_server = _wrap(server_original, 500)

    async def data_error(request: Request, exc: Exception) -> Response:
        if not is_api(request):
            return await wrapped_server(request, exc)
        log.info("database refused a value on %s: %s", request.url.path, exc)
        return error_response(
            422, "invalid", "a value cannot be stored (out of range or invalid characters)"
        )

    async def integrity_error(request: Request, exc: Exception) -> Response:
        if not is_api(request):
            return await wrapped_server(request, exc)
        log.info("integrity error on %s: %s", request.url.path, exc)
        return error_response(409, "conflict", "the change conflicts with existing data")

    async def refused_body(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RefusedBody)
        problem = exc.problem
        code = "bad_request" if problem.status == 400 else "invalid"
        return error_response(problem.status, code, problem.message, problem.field)

    app.add_exception_handler(RefusedBody, refused_body)
    app.add_exception_handler(DataError, data_error)
    app.add_exception_handler(IntegrityError, integrity_error)
    app.add_exception_handler(Exception, wrapped_server)
