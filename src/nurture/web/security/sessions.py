"""Signing in and out of the UI: server-side sessions behind a signed cookie.

Password logins are checked (and rate limited: lockout after repeated failures) by
:func:`nurture.accounts.logins.authenticate`.
"""

from __future__ import annotations

from fastapi import Request, Response

from nurture.accounts import logins, sessions
from nurture.records.models import User
from nurture.web.security.auth import CurrentUser
from nurture.web.security.config import client_ip, request_database, security_config
from nurture.web.security.cookies import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    set_cookie,
    sign_value,
    unsign_value,
)


def start_session(request: Request, response: Response, user: User) -> CurrentUser:
    """Sign ``user`` in: create a server-side session and set the session cookie."""
    config, db = security_config(request), request_database(request)
    now = config.clock()
    previous = unsign_value(config.signing_key, request.cookies.get(SESSION_COOKIE))
    with db.transaction() as s:
        if previous is not None:  # signing in again replaces the browser's old session
            sessions.end_session(s, previous)
        sid, row = sessions.create_session(
            s, user, now=now, ip=client_ip(request), user_agent=request.headers.get("user-agent")
        )
        principal = CurrentUser.of_session(user, row)
    max_age = int(sessions.SESSION_MAX_AGE.total_seconds())
    set_cookie(request, response, SESSION_COOKIE, sign_value(config.signing_key, sid), max_age)
    response.delete_cookie(CSRF_COOKIE, path="/")
    request.state.nurture_user = principal
    return principal


def login_with_password(
    request: Request, response: Response, login: str, password: str
) -> CurrentUser | logins.LoginRefused:
    """Check a password login (rate limited) and, when it succeeds, start a session."""
    config, db = security_config(request), request_database(request)
    now = config.clock()
    with db.transaction() as s:
        result = logins.authenticate(s, login, password, ip=client_ip(request), now=now)
    if isinstance(result, logins.LoginRefused):
        return result
    return start_session(request, response, result)


def end_session(request: Request, response: Response) -> None:
    """Sign out: delete the server-side session and clear the cookie."""
    config = security_config(request)
    sid = unsign_value(config.signing_key, request.cookies.get(SESSION_COOKIE))
    if sid is not None:
        with request_database(request).transaction() as s:
            sessions.end_session(s, sid)
    response.delete_cookie(SESSION_COOKIE, path="/")
    request.state.nurture_user = None
