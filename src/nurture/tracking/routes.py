"""Public tracking routes: open pixel, click redirect, unsubscribe page and one-click POST,
web version (see :mod:`nurture.tracking.urls` for the URL table).

Every handler verifies its token (signature and kind) first; a forged, altered or unknown
token gets a 404 and writes nothing. Each hit is stored (time, user agent, IP class, the
machine-hit flag of :func:`~nurture.tracking.hits.classify_hit`) and, when
:func:`~nurture.tracking.hits.fires_trigger` says so, becomes an engine event
(:func:`nurture.engine.events.apply_events`) in the same transaction — within the request,
not at the next cron; the transaction commits before the response (group commit under
load, see :mod:`nurture.tracking.recorder`). A click also counts as an open (the engine's
implication rule); the unsubscribe and web-version links are separate routes and never
count as clicks.

The unsubscribe URL answers ``GET`` with a confirmation form (optional reason, "exclude me
from all marketing") and ``POST`` with the unsubscribe itself; a ``POST`` whose body is
``List-Unsubscribe=One-Click`` (RFC 8058, sent by mailbox providers) unsubscribes at once,
without a session or CSRF token (the signed token is the credential).
"""

from __future__ import annotations

import base64
import email
import email.policy
import html
from collections.abc import Callable
from datetime import datetime
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from nurture.channels.email import service as email_service
from nurture.channels.email.models import MailMessage
from nurture.clock import utcnow
from nurture.db import Database
from nurture.tracking.hits import HitPolicy
from nurture.tracking.recorder import PendingHit, recorder_for
from nurture.tracking.tokens import KIND_CLICK, KIND_OPEN, KIND_UNSUBSCRIBE, TokenSigner
from nurture.tracking.urls import KIND_VIEW

router = APIRouter(include_in_schema=False)

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
ONE_CLICK = "One-Click"


class _NotFound(Exception):
    pass


def _not_found() -> Response:
    return Response("Not found", status_code=404, media_type="text/plain", headers=NO_CACHE)


def _db(request: Request) -> Database:
    db: Database = request.app.state.runtime.db
    return db


def _signer(request: Request) -> TokenSigner:
    state = request.app.state
    signer: TokenSigner | None = getattr(state, "tracking_signer", None)
    if signer is None:
        signer = TokenSigner.from_settings(state.runtime.settings)
        state.tracking_signer = signer
    return signer


def _policy(request: Request) -> HitPolicy:
    state = request.app.state
    policy: HitPolicy | None = getattr(state, "tracking_policy", None)
    if policy is None:
        policy = HitPolicy.from_settings(state.runtime.settings.extra)
        state.tracking_policy = policy
    return policy


def _now(request: Request) -> datetime:
    """The request time; tests may set ``app.state.tracking_clock``."""
    clock: Callable[[], datetime] = getattr(request.app.state, "tracking_clock", None) or utcnow
    return clock()


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _record(request: Request, hit: PendingHit) -> PendingHit:
    """Write ``hit`` through the app's group-commit recorder (committed on return). The
    handlers are coroutines: the recorder's writer thread does the database work, so a hit
    takes no threadpool thread."""
    recorder = recorder_for(request.app.state, _db(request), lambda: _policy(request))
    return await recorder.record_async(hit)


# --------------------------------------------------------------------------- open pixel


@router.get("/t/o/{token}.gif")
async def open_pixel(token: str, request: Request) -> Response:
    data = _signer(request).verify(token, KIND_OPEN)
    if data is None or len(data.ids) != 1:
        return _not_found()
    hit = PendingHit(
        "open", data.ids[0], None, request.headers.get("user-agent"), _client_ip(request), _now(request)
    )
    if not (await _record(request, hit)).found:
        return _not_found()
    return Response(GIF, media_type="image/gif", headers=NO_CACHE)


# --------------------------------------------------------------------------- clicks


@router.api_route("/t/c/{token}", methods=["GET", "HEAD"])
async def click(token: str, request: Request) -> Response:
    data = _signer(request).verify(token, KIND_CLICK)
    if data is None or len(data.ids) != 2:
        return _not_found()
    link_id, trace_id = data.ids
    hit = PendingHit(
        "click", trace_id, link_id, request.headers.get("user-agent"), _client_ip(request),
        _now(request), method=request.method,
    )
    if not (await _record(request, hit)).found or hit.url is None:
        return _not_found()
    return RedirectResponse(hit.url, status_code=302, headers=NO_CACHE)


# --------------------------------------------------------------------------- unsubscribe

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body>
<main>
<h1>{title}</h1>
{body}
</main>
</body></html>
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), body=body), status_code=status, headers=NO_CACHE
    )


def _unsubscribe_trace(request: Request, token: str) -> int | None:
    data = _signer(request).verify(token, KIND_UNSUBSCRIBE)
    if data is None or len(data.ids) != 1:
        return None
    return data.ids[0]


@router.get("/unsubscribe/{token}")
def unsubscribe_page(token: str, request: Request) -> Response:
    trace_id = _unsubscribe_trace(request, token)
    if trace_id is None:
        return _not_found()
    with _db(request).read() as session:
        target = email_service.unsubscribe_target(session, trace_id)
        if target is None:
            return _not_found()
        address = target.email
    reasons = email_service.unsubscribe_reasons(request.app.state.runtime.settings)
    options = "\n".join(
        f'<p><label><input type="radio" name="reason" value="{html.escape(r, quote=True)}"> '
        f"{html.escape(r)}</label></p>"
        for r in reasons
    )
    body = (
        f"<p>Unsubscribe <strong>{html.escape(address)}</strong> from these emails?</p>"
        f'<form method="post" action="{html.escape(str(request.url.path), quote=True)}">'
        "<fieldset><legend>Why are you unsubscribing? (optional)</legend>"
        f"{options}</fieldset>"
        '<p><label><input type="checkbox" name="blacklist" value="1"> '
        "Exclude me from all marketing emails</label></p>"
        '<p><button type="submit">Unsubscribe</button></p>'
        "</form>"
    )
    return _page("Unsubscribe", body)


@router.post("/unsubscribe/{token}")
async def unsubscribe_post(token: str, request: Request) -> Response:
    trace_id = _unsubscribe_trace(request, token)
    if trace_id is None:
        return _not_found()
    raw = (await request.body())[:65536].decode("utf-8", "replace")
    form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    one_click = form.get("List-Unsubscribe", "").strip() == ONE_CLICK
    if not one_click and "multipart/form-data" in request.headers.get("content-type", ""):
        # RFC 8058 allows the one-click body as multipart/form-data too
        one_click = 'name="List-Unsubscribe"' in raw and ONE_CLICK in raw
    reason = None if one_click else (form.get("reason") or None)
    blacklist = (not one_click) and form.get("blacklist", "").strip().lower() in {"1", "on", "true", "yes"}
    now = _now(request)
    db = _db(request)

    def work() -> bool:
        with db.transaction() as session:
            return email_service.unsubscribe(
                session, trace_id=trace_id, now=now, reason=reason, blacklist=blacklist, one_click=one_click
            )

    if not await run_in_threadpool(work):
        return _not_found()
    if one_click:
        return Response("Unsubscribed", media_type="text/plain", headers=NO_CACHE)
    extra = " You will not receive any marketing email from us." if blacklist else ""
    return _page("Unsubscribed", f"<p>You have been unsubscribed.{html.escape(extra)}</p>")


# --------------------------------------------------------------------------- web version


@router.get("/t/v/{token}")
def web_version(token: str, request: Request) -> Response:
    data = _signer(request).verify(token, KIND_VIEW)
    if data is None or len(data.ids) != 1:
        return _not_found()
    with _db(request).read() as session:
        raw = session.scalar(select(MailMessage.raw).where(MailMessage.trace_id == data.ids[0]))
    if not raw:
        return _not_found()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    part = message.get_body(preferencelist=("html",)) if hasattr(message, "get_body") else None
    if part is None:
        return _not_found()
    content = part.get_content() if hasattr(part, "get_content") else ""
    return HTMLResponse(str(content), headers=NO_CACHE)
