"""The one place where Celery tasks call the delivery entry points.

Delivery (email, SMS, and the webhook outbox being added) is owned by the channel
modules; the tasks call them only through these functions, so a change of their
signatures is adapted here and nowhere else. Each returns a
:class:`~nurture.channels.queue.DeliveryResult` of one round.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from nurture.channels.email import delivery as email_delivery
from nurture.channels.email.models import MailMessage
from nurture.channels.queue import DeliveryResult
from nurture.channels.sms import delivery as sms_delivery
from nurture.channels.sms.models import SmsMessage

log = logging.getLogger(__name__)

CHANNELS = ("email", "sms", "webhook")

#: where the webhook outbox's round is expected once it exists: ``module:function`` taking
#: ``(db, *, now, limit, lease, worker_id)`` and returning a DeliveryResult-like object
WEBHOOK_ROUND = "nurture.actions.webhook:deliver_queued_webhooks"


def _email(db: Any, *, now: datetime, limit: int, lease: timedelta, worker_id: str) -> DeliveryResult:
    # a killed worker leaves the messages of its round in doubt (``mail_unknown`` after
    # the lease, never resent): ``limit`` bounds that, outcomes are recorded once per round
    return email_delivery.deliver_queued(db, now=now, limit=limit, lease=lease, worker_id=worker_id)


def _sms(db: Any, *, now: datetime, limit: int, lease: timedelta, worker_id: str) -> DeliveryResult:
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


def _webhook(db: Any, *, now: datetime, limit: int, lease: timedelta, worker_id: str) -> DeliveryResult:
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
    db: Any, *, channel: str, now: datetime, limit: int, lease: timedelta, worker_id: str
) -> DeliveryResult:
    """One delivery round of ``channel``: recover interrupted sends, claim up to ``limit``
    due messages, send them, record each outcome."""
    try:
        round_ = _ROUNDS[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})") from None
    return round_(db, now=now, limit=limit, lease=lease, worker_id=worker_id)


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
