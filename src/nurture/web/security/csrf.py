"""CSRF protection: the token of a form and the check of state-changing browser requests."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response

from nurture.web.security.auth import CurrentUser, current_user_optional
from nurture.web.security.config import security_config
from nurture.web.security.cookies import CSRF_COOKIE, set_cookie, sign_value, unsign_value

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def csrf_token(request: Request, response: Response) -> str:
    """The CSRF token to put in a form (hidden field ``csrf_token``) or ``X-CSRF-Token``.

    For a signed-in browser it is the session's token; for an anonymous one (the login
    form) a random token in a signed cookie (double submit).
    """
    user = current_user_optional(request)
    if user is not None and user.csrf_token is not None:
        return user.csrf_token
    config = security_config(request)
    existing = unsign_value(config.signing_key, request.cookies.get(CSRF_COOKIE))
    if existing is not None:
        return existing
    token = secrets.token_urlsafe(32)
    set_cookie(request, response, CSRF_COOKIE, sign_value(config.signing_key, token), None)
    return token


def _csrf_refused(message: str) -> HTTPException:
    return HTTPException(status_code=403, detail={"code": "csrf_failed", "message": message})


async def csrf_protect(
    request: Request, user: Annotated[CurrentUser | None, Depends(current_user_optional)]
) -> None:
    """Refuse a state-changing request from a browser without the matching CSRF token.

    Requests authenticated with a bearer token are exempt: browsers never add that header
    on their own, so another site cannot forge them.
    """
    if request.method in SAFE_METHODS or (user is not None and user.via == "token"):
        return
    if user is not None:
        expected = user.csrf_token
    else:
        expected = unsign_value(
            security_config(request).signing_key, request.cookies.get(CSRF_COOKIE)
        )
    if not expected:
        raise _csrf_refused(
            "CSRF check failed: no session for this form; reload the page and submit again"
        )
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            submitted = value if isinstance(value, str) else None
    if not submitted or not hmac.compare_digest(submitted.encode(), expected.encode()):
        raise _csrf_refused(
            "CSRF check failed: the form's security token is missing or does not match; "
            "reload the page and submit again"
        )
