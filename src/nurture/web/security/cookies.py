"""Signed cookie values (HMAC-SHA256 with a key derived from the secret key) and cookies."""

from __future__ import annotations

import base64
import hashlib
import hmac

from fastapi import Request, Response

from nurture.web.security.config import is_https, security_config

SESSION_COOKIE = "nurture_session"
CSRF_COOKIE = "nurture_csrf"  # anonymous forms only (the login form); see csrf.csrf_token()


def _mac(key: bytes, value: str) -> str:
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_value(key: bytes, value: str) -> str:
    return f"{value}.{_mac(key, value)}"


def unsign_value(key: bytes, signed: str | None) -> str | None:
    """The value of a ``value.mac`` string whose MAC matches, else None."""
    if not signed or len(signed) > 512:
        return None
    value, sep, mac = signed.rpartition(".")
    if not sep or not value:
        return None
    if not hmac.compare_digest(_mac(key, value), mac):
        return None
    return value


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    config = security_config(request)
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request) or config.always_secure_cookies,
    )
