"""Authentication, authorisation and hardening for the web server (FastAPI dependencies).

Routes declare what they need::

    @router.get("/api/v1/campaigns")
    def list_campaigns(user: CurrentUser = Depends(require("campaigns.read"))) -> ...

    @router.post("/campaigns/{id}/start", dependencies=[Depends(csrf_protect)])
    def start(user: CurrentUser = Depends(require("campaigns.write"))) -> ...

Credentials: ``Authorization: Bearer nrt_…`` (API) or the ``nurture_session`` cookie (UI).
The cookie holds a random session id signed with the secret key (HMAC-SHA256); the session
itself lives in the ``web_session`` table, so logging out, deactivating a user or changing a
password ends it at once on every worker, and its CSRF token is kept server-side.

:func:`install_security` adds the middlewares and exception handlers (security headers,
request size limit, error bodies without stack traces). The dependencies find the database
at ``request.app.state.runtime.db``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nurture import clock
from nurture.accounts import service
from nurture.accounts.permissions import can
from nurture.config import ConfigError, Settings
from nurture.db import Database
from nurture.errors import Conflict, NotFound, NurtureError, ValidationError
from nurture.records.models import User

log = logging.getLogger(__name__)

SESSION_COOKIE = "nurture_session"
CSRF_COOKIE = "nurture_csrf"  # anonymous forms only (the login form); see csrf_token()
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024  # CSV imports are the largest legitimate bodies
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000; includeSubDomains"


# --- configuration ---------------------------------------------------------------------------


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


def _config(request: Request) -> SecurityConfig:
    config = getattr(request.app.state, "security", None)
    if not isinstance(config, SecurityConfig):
        raise RuntimeError("install_security(app, settings) was not called on this app")
    return config


def _database(request: Request) -> Database:
    runtime = getattr(request.app.state, "runtime", None)
    db = getattr(runtime, "db", None)
    if not isinstance(db, Database):
        raise RuntimeError("app.state.runtime.db is not set")
    return db


def _max_body_from_settings(settings: Settings) -> int:
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


# --- signed cookie values --------------------------------------------------------------------


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


# --- the current user --------------------------------------------------------------------


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


def client_ip(request: Request) -> str | None:
    """The client address as the server sees it (run uvicorn with ``--proxy-headers`` and
    ``--forwarded-allow-ips`` behind a reverse proxy; forwarded headers are not read here)."""
    return request.client.host if request.client else None


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail={"code": "unauthenticated", "message": message},
        headers={"WWW-Authenticate": 'Bearer realm="nurture"'},
    )


def _from_token(request: Request, token: str) -> CurrentUser:
    config, db = _config(request), _database(request)
    now = config.clock()
    with db.read() as s:
        found = service.lookup_token(s, token)
        if found is None:
            raise _unauthorized("invalid or revoked API token")
        row, user = found
        needs_touch = service.token_needs_touch(row, now)
        token_id = row.id
        principal = CurrentUser(
            id=user.id,
            login=user.login,
            name=user.name,
            role=user.role,
            via="token",
            token_id=row.id,
        )
    if needs_touch:  # at most once a minute per token: reads stay off the write lock
        with db.transaction() as s:
            service.touch_token(s, token_id, now)
    return principal


def _from_session_cookie(request: Request, cookie: str) -> CurrentUser | None:
    config, db = _config(request), _database(request)
    sid = unsign_value(config.signing_key, cookie)
    if sid is None:
        return None
    now = config.clock()
    with db.read() as s:
        found = service.lookup_session(s, sid, now)
        if found is None:
            return None
        row, user = found
        needs_touch = service.session_needs_touch(row, now)
        session_id = row.id
        principal = CurrentUser(
            id=user.id,
            login=user.login,
            name=user.name,
            role=user.role,
            via="session",
            session_id=row.id,
            csrf_token=row.csrf_token,
        )
    if needs_touch:
        with db.transaction() as s:
            service.touch_session(s, session_id, now)
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


# --- sessions (for the UI's login and logout) ----------------------------------------------


def _set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    config = _config(request)
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request) or config.always_secure_cookies,
    )


def start_session(request: Request, response: Response, user: User) -> CurrentUser:
    """Sign ``user`` in: create a server-side session and set the session cookie."""
    config, db = _config(request), _database(request)
    now = config.clock()
    previous = unsign_value(config.signing_key, request.cookies.get(SESSION_COOKIE))
    with db.transaction() as s:
        if previous is not None:  # signing in again replaces the browser's old session
            service.end_session(s, previous)
        sid, row = service.create_session(
            s, user, now=now, ip=client_ip(request), user_agent=request.headers.get("user-agent")
        )
        principal = CurrentUser(
            id=user.id,
            login=user.login,
            name=user.name,
            role=user.role,
            via="session",
            session_id=row.id,
            csrf_token=row.csrf_token,
        )
    max_age = int(service.SESSION_MAX_AGE.total_seconds())
    _set_cookie(request, response, SESSION_COOKIE, sign_value(config.signing_key, sid), max_age)
    response.delete_cookie(CSRF_COOKIE, path="/")
    request.state.nurture_user = principal
    return principal


def login_with_password(
    request: Request, response: Response, login: str, password: str
) -> CurrentUser | service.LoginRefused:
    """Check a password login (rate limited) and, when it succeeds, start a session."""
    config, db = _config(request), _database(request)
    now = config.clock()
    with db.transaction() as s:
        result = service.authenticate(s, login, password, ip=client_ip(request), now=now)
    if isinstance(result, service.LoginRefused):
        return result
    return start_session(request, response, result)


def end_session(request: Request, response: Response) -> None:
    """Sign out: delete the server-side session and clear the cookie."""
    config = _config(request)
    sid = unsign_value(config.signing_key, request.cookies.get(SESSION_COOKIE))
    if sid is not None:
        with _database(request).transaction() as s:
            service.end_session(s, sid)
    response.delete_cookie(SESSION_COOKIE, path="/")
    request.state.nurture_user = None


# --- CSRF ----------------------------------------------------------------------------------


def csrf_token(request: Request, response: Response) -> str:
    """The CSRF token to put in a form (hidden field ``csrf_token``) or ``X-CSRF-Token``.

    For a signed-in browser it is the session's token; for an anonymous one (the login
    form) a random token in a signed cookie (double submit).
    """
    user = current_user_optional(request)
    if user is not None and user.csrf_token is not None:
        return user.csrf_token
    config = _config(request)
    existing = unsign_value(config.signing_key, request.cookies.get(CSRF_COOKIE))
    if existing is not None:
        return existing
    token = secrets.token_urlsafe(32)
    _set_cookie(request, response, CSRF_COOKIE, sign_value(config.signing_key, token), None)
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
        expected = unsign_value(_config(request).signing_key, request.cookies.get(CSRF_COOKIE))
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


# --- middlewares ---------------------------------------------------------------------------


class SecurityHeadersMiddleware:
    """Adds CSP, nosniff, frame and referrer headers (and HSTS over HTTPS) to every response."""

    def __init__(
        self,
        app: ASGIApp,
        csp: str = DEFAULT_CSP,
        csp_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.csp = csp
        self.csp_overrides = sorted((csp_overrides or {}).items(), key=lambda kv: -len(kv[0]))

    def _csp_for(self, path: str) -> str:
        for prefix, policy in self.csp_overrides:
            if path.startswith(prefix):
                return policy
        return self.csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self._csp_for(scope.get("path", ""))
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in _header_items(csp, https):
                    if name.lower().encode("latin-1") not in present:
                        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _header_items(csp: str, https: bool) -> list[tuple[str, str]]:
    items = [("Content-Security-Policy", csp), *SECURITY_HEADERS.items()]
    if https:
        items.append(("Strict-Transport-Security", HSTS))
    return items


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
            await _error_response(413, "request_too_large", self._message())(scope, receive, send)
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
            await _error_response(413, "request_too_large", self._message())(scope, receive, send)

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


# --- error bodies --------------------------------------------------------------------------

_STATUS_CODES = {
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


def _error_response(
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
    if isinstance(exc, service.Forbidden):
        return 403
    if isinstance(exc, service.LoginRefused):
        return 429 if exc.reason == "locked" else 401
    return 400


async def _nurture_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NurtureError)
    headers: dict[str, str] = {}
    if isinstance(exc, service.LoginRefused):
        seconds = exc.retry_after_seconds(_config(request).clock())
        if seconds is not None:
            headers["Retry-After"] = str(seconds)
    return _error_response(error_status(exc), exc.code, exc.message, exc.field, headers)


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail: Any = exc.detail
    if isinstance(detail, dict) and "message" in detail:
        code = str(detail.get("code") or _STATUS_CODES.get(exc.status_code, "error"))
        message = str(detail["message"])
        field_name = detail.get("field")
    else:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = str(detail)
        field_name = None
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return _error_response(exc.status_code, code, message, field_name, exc.headers)


async def _server_error_handler(request: Request, exc: Exception) -> Response:
    """500 with a generic body; the traceback goes to the log, never to the client."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    response = _error_response(
        500, "internal_error", "internal server error; the details were logged on the server"
    )
    # This response is sent outside the other middlewares: add the headers here.
    for name, value in _header_items(DEFAULT_CSP, is_https(request)):
        response.headers[name] = value
    return response


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
        max_body_bytes=max_body_bytes or _max_body_from_settings(settings),
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
    app.add_exception_handler(NurtureError, _nurture_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Exception, _server_error_handler)
    return config
