"""The app's security settings and what a request carries: database, client, scheme."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Request

from nurture import clock
from nurture.config import Settings
from nurture.db import Database
from nurture.web.security.headers import DEFAULT_CSP


@dataclass
class SecurityConfig:
    """What :func:`install_security` stored on ``app.state.security``."""

    settings: Settings
    max_body_bytes: int
    csp: str = DEFAULT_CSP
    # Path prefix → CSP for pages that need another policy (e.g. interactive API docs).
    csp_overrides: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = clock.utcnow
    signing_key: bytes = b""

    def __post_init__(self) -> None:
        self.signing_key = hmac.new(
            self.settings.secret_key.encode("utf-8"), b"nurture.web.cookie", hashlib.sha256
        ).digest()

    @property
    def always_secure_cookies(self) -> bool:
        return self.settings.base_url.startswith("https://")


def security_config(request: Request) -> SecurityConfig:
    config = getattr(request.app.state, "security", None)
    if not isinstance(config, SecurityConfig):
        raise RuntimeError("install_security(app, settings) was not called on this app")
    return config


def request_database(request: Request) -> Database:
    runtime = getattr(request.app.state, "runtime", None)
    db = getattr(runtime, "db", None)
    if not isinstance(db, Database):
        raise RuntimeError("app.state.runtime.db is not set")
    return db


def client_ip(request: Request) -> str | None:
    """The client address as the server sees it (run uvicorn with ``--proxy-headers`` and
    ``--forwarded-allow-ips`` behind a reverse proxy; forwarded headers are not read here)."""
    return request.client.host if request.client else None


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"
