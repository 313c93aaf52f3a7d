"""Public SMS routes: tracked short links and provider delivery-status callbacks.

``GET /t/s/<token>`` — an SMS short link (token kind ``sclick``: link id, trace id). The
token is verified first (forged or altered → 404, nothing written); the hit is stored as a
:class:`~nurture.channels.email.models.LinkClick` (shared with email, so link reports cover
both channels) and, when it fires, becomes the engine's ``sms_click`` event in the same
transaction. Answers 302 to the stored URL.

``POST /t/sms/status/<token>`` — a Twilio-style delivery-status callback (token kind
``sstatus``: trace id, put in the ``StatusCallback`` URL when the message was sent). Both
the URL token and the ``X-Twilio-Signature`` (HMAC-SHA1 with the provider's auth token over
the URL and the form, :func:`~nurture.channels.sms.providers.parse_status_callback`) must
verify, and the ``MessageSid`` must be the message sent for that trace; otherwise 403 and
nothing is written. ``delivered`` stamps the message's ``delivered_at``; ``failed`` /
``undelivered`` makes the message ``failed`` and is an ``sms_bounce`` event on the trace (a
transactional SMS only records the failure). Other statuses are acknowledged. Repeated
callbacks change nothing.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity
from nurture.channels.email.models import LinkClick, TrackedLink
from nurture.channels.sms import delivery as sms_delivery
from nurture.channels.sms import service as sms_service
from nurture.channels.sms.models import SmsMessage
from nurture.channels.sms.providers import CallbackRefused, StatusUpdate, parse_status_callback
from nurture.engine.events import record_event
from nurture.engine.models import Trace
from nurture.tracking.hits import Hit, classify_hit, fires_trigger
from nurture.tracking.routes import NO_CACHE, _client_ip, _db, _not_found, _now, _policy, _signer

router = APIRouter(include_in_schema=False)


def _forbidden() -> Response:
    return Response("Forbidden", status_code=403, media_type="text/plain", headers=NO_CACHE)


# --------------------------------------------------------------------------- short links


@router.api_route(sms_service.SMS_CLICK_PREFIX + "{token}", methods=["GET", "HEAD"])
def sms_click(token: str, request: Request) -> Response:
    data = _signer(request).verify(token, sms_service.KIND_SMS_CLICK)
    if data is None or len(data.ids) != 2:
        return _not_found()
    link_id, trace_id = data.ids
    now = _now(request)
    ua = request.headers.get("user-agent")
    policy = _policy(request)
    with _db(request).transaction() as session:
        link = session.get(TrackedLink, link_id)
        trace = session.get(Trace, trace_id)
        activity = session.get(Activity, trace.activity_id) if trace is not None else None
        if (
            link is None
            or trace is None
            or activity is None
            or activity.activity_type != "sms"
            or link.campaign_id != trace.campaign_id
        ):
            return _not_found()
        verdict = classify_hit(
            Hit("click", ua, _client_ip(request), now, trace.sent_at, method=request.method), policy
        )
        fire = fires_trigger("click", verdict, policy)
        session.add(
            LinkClick(
                link_id=link.id,
                trace_id=trace.id,
                at=now,
                user_agent=(ua or "")[:500] or None,
                ip_class=verdict.ip_class,
                machine=verdict.machine,
                reason=verdict.reason[:200] or None,
                fired=fire,
            )
        )
        if fire:
            record_event(session, trace_id=trace.id, event="sms_click", now=now)
        url = link.url
    return RedirectResponse(url, status_code=302, headers=NO_CACHE)


# --------------------------------------------------------------------------- status callbacks


def _candidate_urls(request: Request) -> list[str]:
    """The URL the provider called: as we built it (base URL + path), and as received."""
    query = f"?{request.url.query}" if request.url.query else ""
    built = f"{sms_service.sms_context().base_url}{request.url.path}{query}"
    return list(dict.fromkeys([built, str(request.url)]))


def apply_status(session: Session, *, trace_id: int, update: StatusUpdate, now: datetime) -> bool:
    """Apply a verified status to the message of ``trace_id``; False if it is not that message."""
    message = session.scalar(
        select(SmsMessage).where(SmsMessage.trace_id == trace_id, SmsMessage.provider_id == update.provider_id)
    )
    if message is None:
        return False
    if update.is_delivered:
        if message.delivered_at is None:
            message.delivered_at = now
            message.updated_at = now
    elif update.is_bounce:
        reason = f"provider reported {update.status}" + (
            f" (error {update.error_code})" if update.error_code else ""
        )
        message.state = "failed"  # accepted by the provider, never reached the phone
        message.failure_reason = reason[:1000]
        message.updated_at = now
        trace = session.get(Trace, trace_id)
        if not message.transactional and trace is not None and trace.bounced_at is None:
            trace.failure_reason = sms_service.FAILURE_SERVER
            session.flush()
            record_event(session, trace_id=trace_id, event="sms_bounce", now=now)
    session.flush()
    return True


@router.post(sms_service.SMS_STATUS_PREFIX + "{token}")
async def sms_status(token: str, request: Request) -> Response:
    data = _signer(request).verify(token, sms_service.KIND_SMS_STATUS)
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
            return apply_status(session, trace_id=trace_id, update=found_update, now=now)

    if not await run_in_threadpool(work):
        return _forbidden()
    return Response(status_code=204, headers=NO_CACHE)
