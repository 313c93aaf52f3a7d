"""The request body size limit (``NURTURE_MAX_REQUEST_BYTES``, 16 MiB by default)."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nurture.config import ConfigError, Settings
from nurture.web.security.errors import error_response

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024  # CSV imports are the largest legitimate bodies


def max_body_from_settings(settings: Settings) -> int:
    raw = settings.extra.get("NURTURE_MAX_REQUEST_BYTES")
    if raw is None or raw == "":
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1024:
        raise ConfigError(
            f"NURTURE_MAX_REQUEST_BYTES: expected a number of bytes of at least 1024, got {raw!r}"
        )
    return value


class RequestTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail={
                "code": "request_too_large",
                "message": f"request body too large: at most {limit} bytes are accepted",
            },
        )


class BodySizeLimitMiddleware:
    """413 for a request whose body is larger than ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before any byte is read; a
    chunked body is counted as it is read and refused when it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(413, "request_too_large", self._message())(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLarge:
            if started:
                raise
            await error_response(413, "request_too_large", self._message())(scope, receive, send)

    def _message(self) -> str:
        return f"request body too large: at most {self.max_bytes} bytes are accepted"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
