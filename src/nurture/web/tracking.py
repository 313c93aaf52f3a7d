"""Public tracking routes: open pixel, click redirects (email and SMS short links),
unsubscribe page and one-click POST, web version, SMS delivery-status callbacks (see
:mod:`nurture.tracking.urls` for the URL table).

Every handler verifies its token (signature and kind) first; a forged, altered or unknown
token gets a 404 and writes nothing. Each hit is stored (time, user agent, IP class, the
machine-hit flag of :func:`~nurture.tracking.hits.classify_hit`) and, when
:func:`~nurture.tracking.hits.fires_trigger` says so, becomes an engine event
(:func:`nurture.engine.events.apply_events`) in the same transaction — within the request,
not at the next cron; the transaction commits before the response (group commit under
load, see :mod:`nurture.channels.email.tracking`). A click also counts as an open (the
engine's implication rule); the unsubscribe and web-version links are separate routes and
never count as clicks. An SMS short-link click is recorded by
:func:`nurture.channels.sms.tracking.record_click` (the ``sms_click`` event); both click
routes share one handler.

The unsubscribe URL answers ``GET`` with a confirmation form (optional reason, "exclude me
from all marketing") and ``POST`` with the unsubscribe itself; a ``POST`` whose body is
``List-Unsubscribe=One-Click`` (RFC 8058, sent by mailbox providers) unsubscribes at once,
without a session or CSRF token (the signed token is the credential).

``POST /t/sms/status/<token>`` — a Twilio-style delivery-status callback (token kind
``sstatus``: trace id, put in the ``StatusCallback`` URL when the message was sent). Both
the URL token and the ``X-Twilio-Signature`` (HMAC-SHA1 with the provider's auth token over
the URL and the form, :func:`~nurture.channels.sms.providers.parse_status_callback`) must
verify, and the ``MessageSid`` must be the message sent for that trace
(:func:`nurture.channels.sms.tracking.apply_status`); otherwise 403 and nothing is written.
"""

from __future__ import annotations

import base64
import email
import email.policy
import html
from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import parse_qs, parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from nurture.channels.email import service as email_service
from nurture.channels.email.models import MailMessage
from nurture.channels.email.tracking import PendingHit, recorder_for
from nurture.channels.sms import context as sms_context
from nurture.channels.sms import delivery as sms_delivery
from nurture.channels.sms import tracking as sms_tracking
from nurture.channels.sms.providers import CallbackRefused, StatusUpdate, parse_status_callback
from nurture.clock import utcnow
from nurture.db import Database
from nurture.tracking.hits import HitPolicy
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


ClickRecorder = Callable[[Request, int, int], Awaitable["str | None"]]


async def _click(request: Request, token: str, kind: str, record: ClickRecorder) -> Response:
    """A click redirect: verify the token (``kind``: link id, trace id), record the hit
    (``record``: the URL to redirect to, or None for a 404), redirect."""
    data = _signer(request).verify(token, kind)
    if data is None or len(data.ids) != 2:
        return _not_found()
    link_id, trace_id = data.ids
    url = await record(request, link_id, trace_id)
    if url is None:
        return _not_found()
    return RedirectResponse(url, status_code=302, headers=NO_CACHE)


async def _email_click(request: Request, link_id: int, trace_id: int) -> str | None:
    hit = PendingHit(
        "click", trace_id, link_id, request.headers.get("user-agent"), _client_ip(request),
        _now(request), method=request.method,
    )
    return hit.url if (await _record(request, hit)).found else None


async def _sms_click(request: Request, link_id: int, trace_id: int) -> str | None:
    now, db, policy = _now(request), _db(request), _policy(request)
    ua, ip, method = request.headers.get("user-agent"), _client_ip(request), request.method

    def work() -> str | None:
        with db.transaction() as session:
            return sms_tracking.record_click(
                session, link_id=link_id, trace_id=trace_id, user_agent=ua, ip=ip, at=now,
                method=method, policy=policy,
            )

    return await run_in_threadpool(work)


@router.api_route("/t/c/{token}", methods=["GET", "HEAD"])
async def click(token: str, request: Request) -> Response:
    return await _click(request, token, KIND_CLICK, _email_click)


@router.api_route(sms_context.SMS_CLICK_PREFIX + "{token}", methods=["GET", "HEAD"])
async def sms_click(token: str, request: Request) -> Response:
    return await _click(request, token, sms_context.KIND_SMS_CLICK, _sms_click)


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


# --------------------------------------------------------------------------- SMS status callbacks


def _forbidden() -> Response:
    return Response("Forbidden", status_code=403, media_type="text/plain", headers=NO_CACHE)


def _candidate_urls(request: Request) -> list[str]:
    """The URL the provider called: as we built it (base URL + path), and as received."""
    query = f"?{request.url.query}" if request.url.query else ""
    built = f"{sms_context.sms_context().base_url}{request.url.path}{query}"
    return list(dict.fromkeys([built, str(request.url)]))


@router.post(sms_context.SMS_STATUS_PREFIX + "{token}")
async def sms_status(token: str, request: Request) -> Response:
    data = _signer(request).verify(token, sms_context.KIND_SMS_STATUS)
    if data is None or len(data.ids) != 1:
        return _not_found()
    trace_id = data.ids[0]
    raw = (await request.body())[:65536].decode("utf-8", "replace")
    params = parse_qsl(raw, keep_blank_values=True)
    signature = request.headers.get("x-twilio-signature")
    auth = await run_in_threadpool(sms_delivery.auth_token)
    if not auth:
        return _forbidden()
    update: StatusUpdate | None = None
    for url in _candidate_urls(request):
        try:
            update = parse_status_callback(url, params, signature, auth)
            break
        except CallbackRefused:
            continue
    if update is None:
        return _forbidden()
    now = _now(request)
    db = _db(request)
    found_update = update

    def work() -> bool:
        with db.transaction() as session:
            return sms_tracking.apply_status(session, trace_id=trace_id, update=found_update, now=now)

    if not await run_in_threadpool(work):
        return _forbidden()
    return Response(status_code=204, headers=NO_CACHE)
