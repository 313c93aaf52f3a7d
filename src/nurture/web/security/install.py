"""Wiring the security middlewares and error handlers into an app."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from nurture import clock
from nurture.config import Settings
from nurture.errors import NurtureError
from nurture.web.security.config import SecurityConfig
from nurture.web.security.errors import (
    http_error_handler,
    nurture_error_handler,
    server_error_handler,
)
from nurture.web.security.headers import DEFAULT_CSP, SecurityHeadersMiddleware
from nurture.web.security.limits import BodySizeLimitMiddleware, max_body_from_settings


def install_security(
    app: FastAPI,
    settings: Settings,
    *,
    max_body_bytes: int | None = None,
    csp: str = DEFAULT_CSP,
    csp_overrides: Mapping[str, str] | None = None,
    now: Callable[[], datetime] | None = None,
) -> SecurityConfig:
    """Add the security middlewares and error handlers to ``app`` (call once, before start).

    ``max_body_bytes`` defaults to ``NURTURE_MAX_REQUEST_BYTES`` or 16 MiB. Debug mode is
    turned off: it would send tracebacks to clients.
    """
    config = SecurityConfig(
        settings=settings,
        max_body_bytes=max_body_bytes or max_body_from_settings(settings),
        csp=csp,
        csp_overrides=dict(csp_overrides or {}),
        clock=now or clock.utcnow,
    )
    app.state.security = config
    app.debug = False
    # add_middleware puts each new middleware outermost: headers wrap the size limit, so
    # its 413 carries them too.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware, csp=csp, csp_overrides=config.csp_overrides)
    app.add_exception_handler(NurtureError, nurture_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, server_error_handler)
    return config
