"""Delivery of queued SMS, after the batch that queued them committed (as for email).

:func:`deliver_queued_sms` runs one round; :func:`deliver_due_sms` runs rounds until nothing
is due. The loop — claim a message right before handing it to the provider, record its
outcome in the transaction that claims the next one, short leases renewed by a heartbeat,
recovery of interrupted sends — is the shared delivery core of
:mod:`nurture.channels.queue`. This module is the SMS :class:`SmsChannel`:

* *send*: one provider request per message, outside any transaction (the ``http``
  provider itself retries 429/5xx with backoff, and never retries a request whose answer
  was lost);
* *record*, checking the claim token: ``sent`` (provider message id stored, the trace's
  ``sent_at`` stamped); a temporary failure goes back to ``queued`` with an exponential
  backoff (:data:`RETRY_DELAYS`), until :data:`MAX_ATTEMPTS` when it fails; a permanent
  failure (4xx with the provider's reason) makes the message ``failed``, the trace
  ``error`` with the reason, and is an ``sms_bounce`` event (engine
  :func:`~nurture.engine.events.record_event`) — except for a transactional SMS (server
  action), whose trace is an ``action`` step without events;
* *recover*: a message still ``sending`` past its lease belongs to a worker that died
  while handing it to the provider; it may have reached the phone, so it is **never
  resent**: it becomes ``failed`` (``sms_unknown``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from nurture.channels.queue import (
    DEFAULT_LEASE_SECONDS,
    claim_queued,
    deliver_round,
    deliver_rounds,
    fail_trace,
    recover_interrupted,
    stamp_sent,
    update_claimed,
)
from nurture.channels.queue import DeliveryResult as SmsDeliveryResult
from nurture.channels.sms import service
from nurture.channels.sms.models import SmsMessage
from nurture.channels.sms.providers import (
    SmsConfigError,
    SmsProvider,
    SmsSendResult,
    provider_from_settings,
)
from nurture.engine.events import record_event

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=DEFAULT_LEASE_SECONDS)
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
    rows = claim_queued(
        session, SmsMessage, now=now, limit=limit, token=token, lease=lease,
        columns=("trace_id", "to_number", "body", "attempts", "transactional"),
    )
    return [_Claimed(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]


class SmsChannel:
    """The SMS channel of the delivery core (:class:`nurture.channels.queue.Channel`)."""

    name = "sms"
    model = SmsMessage

    def __init__(self, provider: SmsProvider | None = None) -> None:
        self.provider = provider or default_provider()
        self.ctx = service.sms_context()

    def claim(self, session: Session, *, now: datetime, limit: int, token: str, lease: timedelta) -> list[_Claimed]:
        return claim(session, now=now, limit=limit, token=token, lease=lease)

    def send(self, item: _Claimed, *, now: datetime) -> SmsSendResult:
        try:
            return self.provider.send(
                item.to_number, item.body, status_callback=self.ctx.status_callback_url(item.trace_id)
            )
        except Exception as exc:  # a provider bug must not lose the round
            log.exception("SMS provider %s failed on message %s", self.provider.name, item.id)
            return SmsSendResult("temporary_failure", reason=f"{type(exc).__name__}: {exc}")

    def recover(self, session: Session, *, now: datetime) -> int:
        return recover_interrupted(session, SmsMessage, now=now, trace_failure=service.FAILURE_UNKNOWN)

    def record(
        self,
        session: Session,
        outcomes: Sequence[tuple[_Claimed, SmsSendResult]],
        *,
        token: str,
        now: datetime,
        result: SmsDeliveryResult,
    ) -> None:
        for item, sent in outcomes:
            _record(session, item, sent, provider=self.provider.name, token=token, now=now, result=result)


def _record(
    session: Session,
    item: _Claimed,
    sent: SmsSendResult,
    *,
    provider: str,
    token: str,
    now: datetime,
    result: SmsDeliveryResult,
) -> None:
    if sent.status == "sent":
        if update_claimed(
            session, SmsMessage, item.id, token=token, now=now,
            state="sent", provider=provider, provider_id=sent.provider_id, sent_at=now, failure_reason=None,
        ):
            stamp_sent(session, item.trace_id, now=now)
            result.sent += 1
        return
    reason = (sent.reason or sent.status)[:1000]
    if sent.status == "temporary_failure" and item.attempts < MAX_ATTEMPTS:
        if update_claimed(
            session, SmsMessage, item.id, token=token, now=now,
            state="queued", next_attempt_at=now + retry_delay(item.attempts), failure_reason=reason,
        ):
            result.retried += 1
        return
    if not update_claimed(
        session, SmsMessage, item.id, token=token, now=now,
        state="failed", provider=provider, provider_id=sent.provider_id, failure_reason=reason,
    ):
        return
    fail_trace(session, item.trace_id, message=f"Not delivered: {reason}", failure_type=service.FAILURE_SERVER)
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
    lease: timedelta | None = None,
    worker_id: str = "deliver-sms",
) -> SmsDeliveryResult:
    """One round: recover, then claim, send and record up to ``limit`` messages one by one
    (:func:`nurture.channels.queue.deliver_round`)."""
    channel = SmsChannel(provider or default_provider())
    return deliver_round(db, channel, now=now, limit=limit, worker_id=worker_id, lease=lease)


def deliver_due_sms(
    db: Any,
    *,
    now: datetime,
    provider: SmsProvider | None = None,
    limit: int = DEFAULT_LIMIT,
    lease: timedelta | None = None,
    worker_id: str = "deliver-sms",
    max_rounds: int = 1000,
) -> SmsDeliveryResult:
    """Rounds of :func:`deliver_queued_sms` until nothing due is left."""
    channel = SmsChannel(provider or default_provider())
    return deliver_rounds(
        db, channel, now=now, limit=limit, worker_id=worker_id, lease=lease, max_rounds=max_rounds
    )
