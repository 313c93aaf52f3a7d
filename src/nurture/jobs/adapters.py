"""The one place where Celery tasks call the delivery entry points.

Delivery (email, SMS, webhooks) is owned by the channel modules and their shared core
(:mod:`nurture.channels.queue`: claim right before each hand-over, record each outcome,
heartbeat-renewed leases); a task runs one :func:`~nurture.channels.queue.deliver_round`
of one channel. Each returns a :class:`~nurture.channels.queue.DeliveryResult`.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from nurture.channels import queue
from nurture.channels.delivery import channel_for, channel_names
from nurture.channels.email import delivery as email_delivery
from nurture.channels.email.context import email_context
from nurture.channels.email.receive import handle_inbound as receive_inbound
from nurture.channels.queue import DeliveryResult
from nurture.engine.models import Trace
from nurture.jobs.ratelimit import Limiter, RateLimitedTransport, RateLimits, round_limit
from nurture.tracking.tokens import KIND_MESSAGE

log = logging.getLogger(__name__)

Rate = tuple[RateLimits, Limiter] | None


_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^@>\s]+)@", re.IGNORECASE | re.MULTILINE)


def campaign_of(db: Any, raw: bytes) -> int | None:
    """The campaign of an outgoing message, from its signed Message-ID token."""
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
    """One delivery round of ``channel``: recover interrupted sends, then claim → send →
    record up to ``limit`` messages one at a time. ``rate``: the shared rate limits (email;
    SMS and webhooks are not limited yet)."""
    known = channel_names()
    if channel not in known:
        raise ValueError(f"unknown channel {channel!r} (known: {', '.join(known)})")
    transport = None
    if channel == "email" and rate is not None and rate[0].active:
        limits, limiter = rate
        limit = round_limit(limits, batch=limit, lease_seconds=lease.total_seconds())
        transport = RateLimitedTransport(
            email_delivery.default_transport(),
            limits,
            limiter,
            campaign_of=lambda raw: campaign_of(db, raw),
        )
    return queue.deliver_round(
        db,
        channel_for(channel, transport=transport),
        now=now,
        limit=limit,
        worker_id=worker_id,
        lease=lease,
    )


def channels_with_work(session: Any, *, now: datetime) -> list[str]:
    """The channels with a message due or a send interrupted past its lease."""
    found = []
    for name in channel_names():
        try:
            due, stale = queue.has_work(session, channel_for(name), now=now)
        except Exception:  # a misconfigured channel must not stop the scheduler
            log.exception("checking the %s outbox failed", name)
            continue
        if due or stale:
            found.append(name)
    return found


def handle_inbound(db: Any, raw: bytes, *, now: datetime) -> Any:
    """Process one received message (bounce, reply, unsubscribe): the inbound service."""
    return receive_inbound(db, raw, now=now)
