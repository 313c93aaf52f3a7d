"""What every page of the web UI shares: templates, static assets, the signed-in user, flashes.

Pages are server-rendered Jinja2 templates (``src/nurture/web/templates/ui``) extending
``ui/base.html``; htmx swaps fragments for partial updates. A route of the UI:

    router = APIRouter(dependencies=[Depends(csrf_protect)])

    @router.get("/campaigns")
    def board(request: Request, user: UiUser, session: UiReadSession) -> Response:
        return render(request, "ui/campaigns/board.html", {"campaigns": ...})

* :data:`UiUser` — the signed-in user, or a redirect to ``/login?next=…`` (``HX-Redirect``
  for htmx requests); :func:`ui_require` adds a role check (403 page).
* Sessions: :data:`UiReadSession` / :data:`UiWriteSession` (signed-in pages; they imply
  :data:`UiUser`), :data:`PublicReadSession` (login, setup); the time: ``Now`` from
  :mod:`nurture.web.api.common`.
* :func:`render` — a page (or an htmx fragment) with ``user``, ``csrf_token``, ``flashes``,
  ``static_url`` and ``nav`` in its context.
* :func:`flash` + :func:`redirect` — post/redirect/get with a message shown on the next page.
* Static files are served from ``/static/<hash>/<path>`` with a year of caching; the hash is
  the file's content hash, so a changed file gets a new URL (:func:`static_url`).

No inline scripts or styles anywhere (the CSP is ``script-src 'self'; style-src 'self'``):
behaviour lives in ``static/app.js``, looks in ``static/app.css``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from nurture.db import Database
from nurture.web.security.auth import CurrentUser, current_user_optional, require
from nurture.web.security.cookies import sign_value, unsign_value
from nurture.web.security.csrf import csrf_token

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
FLASH_COOKIE = "nurture_flash"

#: top navigation: (label, path, permission needed to see it)
NAV: tuple[tuple[str, str], ...] = (
    ("Campaigns", "/campaigns"),
    ("Contacts", "/records/contact"),
    ("Leads", "/records/lead"),
    ("Mailing lists", "/records/mailing_contact"),
    ("Events", "/records/event_registration"),
    ("Reporting", "/reporting"),
    ("Configuration", "/configuration"),
)


class LoginRequired(Exception):
    """Raised by :data:`UiUser` without a session; answered with a redirect to the login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


# --- static assets -------------------------------------------------------------------------


@cache
def _file_hash(path: str) -> str:
    return hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest()[:12]


def static_url(path: str) -> str:
    """``/static/<content hash>/<path>`` for a file under the static folder."""
    return f"/static/{_file_hash(path)}/{path}"


# --- templates -----------------------------------------------------------------------------


def _tojson_attr(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(("html", "svg", "xml"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(static_url=static_url, nav=NAV)
    env.filters["tojson_attr"] = _tojson_attr
    return env


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def safe_next(value: str | None, default: str = "/campaigns") -> str:
    """A local path to go to after sign-in: never another site (no open redirect)."""
    if not value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(c) < 32 for c in value):
        return default
    return value


def _flash_messages(request: Request) -> list[dict[str, str]]:
    config = request.app.state.security
    raw = unsign_value(config.signing_key, request.cookies.get(FLASH_COOKIE))
    if not raw:
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        return []
    return [
        {"kind": str(i.get("kind", "info")), "text": str(i.get("text", ""))}
        for i in items
        if isinstance(i, dict)
    ][:5]


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render a page or fragment with the shared context."""
    cookie_holder = Response()
    csrf = csrf_token(request, cookie_holder)
    user = current_user_optional(request)
    flashes = _flash_messages(request)
    body = environment().get_template(template).render(
        request=request,
        user=user,
        csrf_token=csrf,
        flashes=flashes,
        path=request.url.path,
        **(context or {}),
    )
    response = HTMLResponse(body, status_code=status_code, headers=dict(headers or {}))
    for name, value in cookie_holder.raw_headers:
        if name == b"set-cookie":
            response.raw_headers.append((name, value))
    response.headers["Cache-Control"] = "no-store"
    if flashes:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def form_values(form: Mapping[str, Any]) -> dict[str, str]:
    """The text fields of a submitted form (uploaded files left out)."""
    return {k: v for k, v in form.items() if isinstance(v, str)}


def flash(request: Request, response: Response, text: str, kind: str = "success") -> None:
    """Show ``text`` on the next page rendered for this browser."""
    config = request.app.state.security
    items = _flash_messages(request) + [{"kind": kind, "text": text}]
    value = sign_value(config.signing_key, json.dumps(items[-5:]))
    response.set_cookie(FLASH_COOKIE, value, path="/", httponly=True, samesite="lax")


def redirect(request: Request, url: str, message: str | None = None, kind: str = "success") -> Response:
    """303 to ``url`` (or ``HX-Redirect`` for htmx), with an optional flash message."""
    response: Response
    if is_htmx(request):
        response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if message:
        flash(request, response, message, kind)
    return response


# --- dependencies --------------------------------------------------------------------------


def _ui_user(request: Request) -> CurrentUser:
    user = current_user_optional(request)
    if user is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        raise LoginRequired(target)
    return user


UiUser = Annotated[CurrentUser, Depends(_ui_user)]


def ui_require(action: str) -> Any:
    """A dependency: the signed-in user if their role allows ``action``, else a 403 page."""
    require(action)  # validates the action name at declaration time

    def dependency(user: UiUser) -> CurrentUser:
        if not user.can(action):
            raise HTTPException(
                status_code=403,
                detail={
                    "code": "forbidden",
                    "message": f"your role ({user.role}) does not allow this ({action})",
                },
            )
        return user

    return Depends(dependency)


def database(request: Request) -> Database:
    """The database, for routes that open their own write transaction (a form that shows
    the service's validation error next to its field: ``with database(request).transaction()``
    around the service call, render the form again on :class:`NurtureError`)."""
    db: Database = request.app.state.runtime.db
    return db


def _public_read_session(request: Request) -> Iterator[Session]:
    with database(request).read() as session:
        yield session


def _ui_read_session(request: Request, _user: UiUser) -> Iterator[Session]:
    with database(request).read() as session:
        yield session


def _ui_write_session(request: Request, _user: UiUser) -> Iterator[Session]:
    with database(request).transaction() as session:
        yield session


#: a read-only session for a signed-in user's page (redirects to the login without one)
UiReadSession = Annotated[Session, Depends(_ui_read_session, scope="function")]
#: one write transaction, committed when the route returns, rolled back when it raises
UiWriteSession = Annotated[Session, Depends(_ui_write_session, scope="function")]
#: a read-only session for the pages anyone may see (login, setup)
PublicReadSession = Annotated[Session, Depends(_public_read_session, scope="function")]


@dataclass(frozen=True)
class FieldError:
    """A validation error to show next to a form field."""

    field: str | None
    message: str


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="/")
