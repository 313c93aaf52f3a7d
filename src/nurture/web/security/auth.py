"""The current user of a request (bearer token or session cookie) and role checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request

from nurture.accounts import sessions, tokens
from nurture.accounts.models import ApiToken, WebSession
from nurture.accounts.permissions import can
from nurture.records.models import User
from nurture.web.security.config import request_database, security_config
from nurture.web.security.cookies import SESSION_COOKIE, unsign_value


@dataclass(frozen=True)
class CurrentUser:
    """The authenticated user of a request (a plain value: safe outside any DB session)."""

    id: int
    login: str
    name: str
    role: str
    via: Literal["token", "session"]
    token_id: int | None = None
    session_id: int | None = None
    csrf_token: str | None = None

    def can(self, action: str) -> bool:
        return can(self.role, action)

    @classmethod
    def of_token(cls, user: User, token: ApiToken) -> CurrentUser:
        return cls(user.id, user.login, user.name, user.role, "token", token_id=token.id)

    @classmethod
    def of_session(cls, user: User, session: WebSession) -> CurrentUser:
        return cls(
            user.id, user.login, user.name, user.role, "session",
            session_id=session.id, csrf_token=session.csrf_token,
        )


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail={"code": "unauthenticated", "message": message},
        headers={"WWW-Authenticate": 'Bearer realm="nurture"'},
    )


def _from_token(request: Request, token: str) -> CurrentUser:
    config, db = security_config(request), request_database(request)
    now = config.clock()
    with db.read() as s:
        found = tokens.lookup_token(s, token)
        if found is None:
            raise _unauthorized("invalid or revoked API token")
        row, user = found
        needs_touch = tokens.token_needs_touch(row, now)
        token_id = row.id
        principal = CurrentUser.of_token(user, row)
    if needs_touch:  # at most once a minute per token: reads stay off the write lock
        with db.transaction() as s:
            tokens.touch_token(s, token_id, now)
    return principal


def _from_session_cookie(request: Request, cookie: str) -> CurrentUser | None:
    config, db = security_config(request), request_database(request)
    sid = unsign_value(config.signing_key, cookie)
    if sid is None:
        return None
    now = config.clock()
    with db.read() as s:
        found = sessions.lookup_session(s, sid, now)
        if found is None:
            return None
        row, user = found
        needs_touch = sessions.session_needs_touch(row, now)
        session_id = row.id
        principal = CurrentUser.of_session(user, row)
    if needs_touch:
        with db.transaction() as s:
            sessions.touch_session(s, session_id, now)
    return principal


_UNSET = object()


def current_user_optional(request: Request) -> CurrentUser | None:
    """The authenticated user, or None without credentials.

    A bearer token that is malformed, unknown or revoked is a 401 (never silently
    anonymous); an expired or forged session cookie just means "not signed in".
    """
    cached = getattr(request.state, "nurture_user", _UNSET)
    if cached is None or isinstance(cached, CurrentUser):
        return cached
    principal: CurrentUser | None = None
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized("malformed Authorization header; expected 'Bearer <token>'")
        principal = _from_token(request, credentials.strip())
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = _from_session_cookie(request, cookie)
    request.state.nurture_user = principal
    return principal


def current_user(
    user: Annotated[CurrentUser | None, Depends(current_user_optional)],
) -> CurrentUser:
    """The authenticated user; 401 without valid credentials."""
    if user is None:
        raise _unauthorized(
            "authentication required: sign in or send 'Authorization: Bearer <token>'"
        )
    return user


def require(action: str) -> Callable[..., CurrentUser]:
    """A dependency returning the current user when their role allows ``action``, else 403.

    The action is checked when the route is declared (an unknown action raises then).
    """
    can(None, action)  # raises UnknownAction for a typo

    def dependency(user: Annotated[CurrentUser, Depends(current_user)]) -> CurrentUser:
        if not can(user.role, action):
            raise HTTPException(
                status_code=403,
                detail={
                    "code": "forbidden",
                    "message": f"your role ({user.role}) does not allow {action}",
                },
            )
        return user

    dependency.__name__ = f"require_{action.replace('.', '_')}"
    return dependency
