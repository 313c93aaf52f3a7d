"""What SMS tracking writes: short-link clicks and provider delivery-status callbacks
(their HTTP routes are :mod:`nurture.web.tracking`).

* :func:`record_click` — a hit on an SMS short link (token kind ``sclick``: link id, trace
  id) is stored as a :class:`~nurture.channels.email.models.LinkClick` (shared with email,
  so link reports cover both channels) and, when it fires
  (:func:`~nurture.tracking.hits.fires_trigger`), becomes the engine's ``sms_click`` event
  in the same transaction.
* :func:`apply_status` — a verified Twilio-style status callback: ``delivered`` stamps the
  message's ``delivered_at``; ``failed`` / ``undelivered`` makes the message ``failed`` and
  is an ``sms_bounce`` event on the trace (a transactional SMS only records the failure).
  Other statuses change nothing; repeated callbacks change nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity
from nurture.channels.email.models import LinkClick, TrackedLink
from nurture.channels.sms.delivery import FAILURE_SERVER
from nurture.channels.sms.models import SmsMessage
from nurture.channels.sms.providers import StatusUpdate
from nurture.engine.events import record_event
from nurture.engine.models import Trace
from nurture.tracking.hits import Hit, HitPolicy, classify_hit, fires_trigger


def record_click(
    session: Session,
    *,
    link_id: int,
    trace_id: int,
    user_agent: str | None,
    ip: str | None,
    at: datetime,
    method: str,
    policy: HitPolicy,
) -> str | None:
    """Store a hit on link ``link_id`` of an SMS of trace ``trace_id``; the URL to redirect
    to, or None (not an SMS step, or a link of another campaign: nothing written)."""
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
        return None
    verdict = classify_hit(Hit("click", user_agent, ip, at, trace.sent_at, method=method), policy)
    fire = fires_trigger("click", verdict, policy)
    session.add(
        LinkClick(
            link_id=link.id,
            trace_id=trace.id,
            at=at,
            user_agent=(user_agent or "")[:500] or None,
            ip_class=verdict.ip_class,
            machine=verdict.machine,
            reason=verdict.reason[:200] or None,
            fired=fire,
        )
    )
    if fire:
        record_event(session, trace_id=trace.id, event="sms_click", now=at)
    return link.url


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
            trace.failure_reason = FAILURE_SERVER
            session.flush()
            record_event(session, trace_id=trace_id, event="sms_bounce", now=now)
    session.flush()
    return True
