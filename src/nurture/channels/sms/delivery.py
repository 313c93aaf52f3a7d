"""Delivery of queued SMS, after the batch that queued them committed (as for email).

:func:`deliver_queued_sms` runs one round; :func:`deliver_due_sms` runs rounds until nothing
is due (the engine loop calls it next to the email delivery).

**Exactly once.** Each round:

1. *recover*: a message still ``sending`` past its lease belongs to a worker that crashed
   while handing it to the provider; it may have reached the phone, so it is **never
   resent**: it becomes ``failed`` (``sms_unknown``);
2. *claim*: up to ``limit`` due ``queued`` messages move to ``sending`` with a lease and a
   claim token, ``attempts + 1``, in a short committed transaction (``FOR UPDATE SKIP
   LOCKED`` on PostgreSQL);
3. *send* each claimed message through the provider, outside any transaction (the ``http``
   provider itself retries 429/5xx with backoff, and never retries a request whose answer
   was lost);
4. *record* each outcome in its own short transaction, checking the claim token: ``sent``
   (provider message id stored, the trace's ``sent_at`` stamped); a temporary failure goes
   back to ``queued`` with an exponential backoff (:data:`RETRY_DELAYS`), until
   :data:`MAX_ATTEMPTS` when it fails; a permanent failure (4xx with the provider's reason)
   makes the message ``failed``, the trace ``error`` with the reason, and is an
   ``sms_bounce`` event (engine :func:`~nurture.engine.events.record_event`) — except for a
   transactional SMS (server action), whose trace is an ``action`` step without events.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nurture.channels.queue import DeliveryResult as SmsDeliveryResult
from nurture.channels.queue import claim_queued, recover_interrupted
from nurture.channels.sms import service
from nurture.channels.sms.models import SmsMessage
from nurture.channels.sms.providers import (
    SmsConfigError,
    SmsProvider,
    SmsSendResult,
    provider_from_settings,
)
from nurture.engine.events import record_event
from nurture.engine.models import Trace

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=10)
DEFAULT_LIMIT = 200
MAX_ATTEMPTS = 6
#: wait before attempt n+1 after a temporary failure of attempt n
RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
)

_provider: SmsProvider | None = None
_provider_lock = threading.Lock()


def reset_provider() -> None:
    """Forget the process provider (after :func:`service.configure`)."""
    global _provider
    with _provider_lock:
        _provider = None


def default_provider() -> SmsProvider:
    """``http`` when ``NURTURE_SMS_URL`` is set, else the outbox (one per process).

    ``NURTURE_SMS_BACKOFF`` (seconds, default 0.5) is the first in-request retry delay of the
    ``http`` provider.
    """
    global _provider
    with _provider_lock:
        if _provider is None:
            extra = service.sms_context().settings.extra
            kwargs: dict[str, Any] = {}
            backoff = extra.get("NURTURE_SMS_BACKOFF", "").strip()
            if backoff:
                kwargs["backoff"] = float(backoff)
            _provider = provider_from_settings(extra, **kwargs)
        return _provider


def auth_token() -> str | None:
    """The ``http`` provider's auth token (verifies status callbacks), or None."""
    try:
        provider = default_provider()
    except (SmsConfigError, ValueError):
        log.exception("SMS provider misconfigured; status callbacks are refused")
        return None
    token = getattr(provider, "auth_token", None)
    return str(token) if token else None


@dataclass(frozen=True)
class _Claimed:
    id: int
    trace_id: int
    to_number: str
    body: str
    attempts: int
    transactional: bool


def retry_delay(attempts: int) -> timedelta:
    return RETRY_DELAYS[min(max(attempts, 1), len(RETRY_DELAYS)) - 1]


def claim(session: Session, *, now: datetime, limit: int, token: str, lease: timedelta) -> list[_Claimed]:
    ids = claim_queued(session, SmsMessage, now=now, limit=limit, token=token, lease=lease)
    if not ids:
        return []
    rows = session.execute(
        select(
            SmsMessage.id,
            SmsMessage.trace_id,
            SmsMessage.to_number,
            SmsMessage.body,
            SmsMessage.attempts,
            SmsMessage.transactional,
        )
        .where(SmsMessage.id.in_(ids), SmsMessage.claimed_by == token, SmsMessage.state == "sending")
        .order_by(SmsMessage.id)
    ).all()
    return [_Claimed(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]


def _record(
    db: Any,
    item: _Claimed,
    sent: SmsSendResult,
    *,
    provider: str,
    token: str,
    now: datetime,
    result: SmsDeliveryResult,
) -> None:
    mine = (SmsMessage.id == item.id) & (SmsMessage.claimed_by == token) & (SmsMessage.state == "sending")
    with db.transaction() as session:
        if sent.status == "sent":
            session.execute(
                update(SmsMessage)
                .where(mine)
                .values(
                    state="sent",
                    provider=provider,
                    provider_id=sent.provider_id,
                    sent_at=now,
                    lease_until=None,
                    failure_reason=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            session.execute(
                update(Trace)
                .where(Trace.id == item.trace_id, Trace.sent_at.is_(None))
                .values(sent_at=now)
                .execution_options(synchronize_session=False)
            )
            result.sent += 1
            return
        reason = (sent.reason or sent.status)[:1000]
        if sent.status == "temporary_failure" and item.attempts < MAX_ATTEMPTS:
            session.execute(
                update(SmsMessage)
                .where(mine)
                .values(
                    state="queued",
                    next_attempt_at=now + retry_delay(item.attempts),
                    lease_until=None,
                    failure_reason=reason,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            result.retried += 1
            return
        res = session.execute(
            update(SmsMessage)
            .where(mine)
            .values(
                state="failed",
                provider=provider,
                provider_id=sent.provider_id,
                lease_until=None,
                failure_reason=reason,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if not getattr(res, "rowcount", 0):
            return
        session.execute(
            update(Trace)
            .where(Trace.id == item.trace_id)
            .values(
                state="error",
                state_message=f"Not delivered: {reason}"[:1000],
                failure_reason=service.FAILURE_SERVER,
            )
            .execution_options(synchronize_session=False)
        )
        if not item.transactional:
            # a send-time refusal counts as a bounce: bounce children run, others cancel
            record_event(session, trace_id=item.trace_id, event="sms_bounce", now=now)
        result.failed += 1


def deliver_queued_sms(
    db: Any,
    *,
    now: datetime,
    provider: SmsProvider | None = None,
    limit: int = DEFAULT_LIMIT,
    lease: timedelta = DEFAULT_LEASE,
    worker_id: str = "deliver-sms",
) -> SmsDeliveryResult:
    """One round: recover, claim up to ``limit`` due messages, send, record (module doc)."""
    result = SmsDeliveryResult()
    with db.read() as session:
        due = session.scalar(
            select(SmsMessage.id)
            .where(SmsMessage.state == "queued", SmsMessage.next_attempt_at <= now)
            .limit(1)
        )
        stale = session.scalar(
            select(SmsMessage.id)
            .where(SmsMessage.state == "sending", SmsMessage.lease_until < now)
            .limit(1)
        )
    if due is None and stale is None:
        return result
    provider = provider or default_provider()
    ctx = service.sms_context()
    token = f"{worker_id[:48]}:{uuid.uuid4().hex[:12]}"
    with db.transaction() as session:
        if stale is not None:
            result.unknown += recover_interrupted(
                session, SmsMessage, now=now, trace_failure=service.FAILURE_UNKNOWN
            )
        claimed = claim(session, now=now, limit=limit, token=token, lease=lease) if due is not None else []
    result.claimed = len(claimed)
    for item in claimed:
        try:
            sent = provider.send(
                item.to_number, item.body, status_callback=ctx.status_callback_url(item.trace_id)
            )
        except Exception as exc:  # a provider bug must not lose the whole round
            log.exception("SMS provider %s failed on message %s", provider.name, item.id)
            sent = SmsSendResult("temporary_failure", reason=f"{type(exc).__name__}: {exc}")
        _record(db, item, sent, provider=provider.name, token=token, now=now, result=result)
    return result


def deliver_due_sms(
    db: Any,
    *,
    now: datetime,
    provider: SmsProvider | None = None,
    limit: int = DEFAULT_LIMIT,
    worker_id: str = "deliver-sms",
    max_rounds: int = 1000,
) -> SmsDeliveryResult:
    """Rounds of :func:`deliver_queued_sms` until nothing due is left."""
    total = SmsDeliveryResult()
    for _ in range(max_rounds):
        result = deliver_queued_sms(db, now=now, provider=provider, limit=limit, worker_id=worker_id)
        total.add(result)
        if result.claimed == 0:
            break
    return total
