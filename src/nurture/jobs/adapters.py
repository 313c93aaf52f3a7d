"""The one place where Celery tasks call the delivery entry points.

Delivery (email, SMS, and the webhook outbox being added) is owned by the channel
modules; the tasks call them only through these functions, so a change of their
signatures is adapted here and nowhere else. Each returns a
:class:`~nurture.channels.queue.DeliveryResult` of one round.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from nurture.channels.email import delivery as email_delivery
from nurture.channels.email.models import MailMessage
from nurture.channels.queue import DeliveryResult
from nurture.channels.sms import delivery as sms_delivery
from nurture.channels.sms.models import SmsMessage
from nurture.jobs.ratelimit import Limiter, RateLimitedTransport, RateLimits, round_limit

log = logging.getLogger(__name__)

CHANNELS = ("email", "sms", "webhook")
Rate = tuple[RateLimits, Limiter] | None

#: where the webhook outbox's round is expected once it exists: ``module:function`` taking
#: ``(db, *, now, limit, lease, worker_id)`` and returning a DeliveryResult-like object
WEBHOOK_ROUND = "nurture.actions.webhook:deliver_queued_webhooks"


def _email(
    db: Any, *, now: datetime, limit: int, lease: timedelta, worker_id: str, rate: Rate = None
) -> DeliveryResult:
    # a killed worker leaves the messages of its round in doubt (``mail_unknown`` after
    # the lease, never resent): ``limit`` bounds that, outcomes are recorded once per round
    transport = None
    if rate is not None and rate[0].active:
        limits, limiter = rate
        limit = round_limit(limits, batch=limit, lease_seconds=lease.total_seconds())
        transport = RateLimitedTransport(
            email_delivery.default_transport(), limits, limiter, campaign_of=lambda raw: campaign_of(db, raw)
        )
    return email_delivery.deliver_queued(
        db, now=now, limit=limit, lease=lease, worker_id=worker_id, transport=transport
    )


_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^@>\s]+)@", re.IGNORECASE | re.MULTILINE)


def campaign_of(db: Any, raw: bytes) -> int | None:
    """The campaign of an outgoing message, from its signed Message-ID token."""
    from nurture.channels.email.service import email_context
    from nurture.engine.models import Trace
    from nurture.tracking.tokens import KIND_MESSAGE

    header_end = raw.find(b"\r\n\r\n")
    match = _MESSAGE_ID.search(raw[: header_end if header_end > 0 else 8192])
    if match is None:
        return None
    data = email_context().signer.verify(match.group(1).decode("ascii", "replace"), KIND_MESSAGE)
    if data is None or not data.ids:
        return None
    with db.read() as session:
        found = session.scalar(select(Trace.campaign_id).where(Trace.id == data.ids[0]))
    return int(found) if found is not None else None


def _sms(
    db: Any, *, now: datetime, limit: int, lease: timedelta, worker_id: str, rate: Rate = None
) -> DeliveryResult:
    return sms_delivery.deliver_queued_sms(db, now=now, limit=limit, lease=lease, worker_id=worker_id)


def webhook_round() -> Callable[..., Any] | None:
    """The webhook outbox's delivery round, when this version has one."""
    module_name, _, name = WEBHOOK_ROUND.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    found = getattr(module, name, None)
    return found if callable(found) else None


def _webhook(
    db: Any, *, now: datetime, limit: int, lease: timedelta, worker_id: str, rate: Rate = None
) -> DeliveryResult:
    round_ = webhook_round()
    if round_ is None:  # webhooks are still sent by their executor, inside the batch
        return DeliveryResult()
    got = round_(db, now=now, limit=limit, lease=lease, worker_id=worker_id)
    result = DeliveryResult()
    for name in ("claimed", "sent", "retried", "failed", "unknown"):
        setattr(result, name, int(getattr(got, name, 0) or 0))
    return result


_ROUNDS: dict[str, Callable[..., DeliveryResult]] = {"email": _email, "sms": _sms, "webhook": _webhook}


def deliver_round(
    db: Any,
    *,
    channel: str,
    now: datetime,
    limit: int,
    lease: timedelta,
    worker_id: str,
    rate: Rate = None,
) -> DeliveryResult:
    """One delivery round of ``channel``: recover interrupted sends, claim up to ``limit``
    due messages, send them, record each outcome. ``rate``: the shared rate limits (email;
    SMS and webhooks are not limited yet)."""
    try:
        round_ = _ROUNDS[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})") from None
    return round_(db, now=now, limit=limit, lease=lease, worker_id=worker_id, rate=rate)


def channels_with_work(session: Any, *, now: datetime) -> list[str]:
    """The channels with a message due or a send interrupted past its lease."""
    found = []
    for channel, model in (("email", MailMessage), ("sms", SmsMessage)):
        due = session.scalar(
            select(model.id)
            .where(
                ((model.state == "queued") & (model.next_attempt_at <= now))
                | ((model.state == "sending") & (model.lease_until < now))
            )
            .limit(1)
        )
        if due is not None:
            found.append(channel)
    if webhook_round() is not None:
        found.append("webhook")
    return found


def handle_inbound(db: Any, raw: bytes, *, now: datetime) -> Any:
    """Process one received message (bounce, reply, unsubscribe): the inbound service."""
    from nurture.channels.email.receive import handle_inbound as receive

    return receive(db, raw, now=now)
