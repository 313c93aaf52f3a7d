"""Delivery of queued email, after the batch that queued them committed.

:func:`deliver_queued` runs one round; :func:`deliver_due` runs rounds until nothing is
due (the engine loop calls them after each drain of due traces: ``nurture tick``,
``nurture worker``, the in-process runner).

The loop itself — claim one message right before handing it over, record its outcome in
the transaction that claims the next one, short leases renewed by a heartbeat, recovery of
interrupted sends — is the shared delivery core of :mod:`nurture.channels.queue` (the same
for SMS and webhooks). This module is the email :class:`EmailChannel`:

* *send*: the transport (one SMTP transaction per message), outside any transaction;
* *record*: ``sent`` (the trace's ``sent_at`` stamped); a temporary failure goes back to
  ``queued`` with ``next_attempt_at`` = exponential backoff (``transports.decide``); a
  permanent one (or the last attempt) makes the message ``failed``, the trace ``error``
  with the reason, and counts as a bounce (engine ``record_event(bounce)``, and the
  auto-blacklist rule of :mod:`.bounces` for the address). The updates check the claim
  token, so a stale worker cannot overwrite another's outcome;
* *recover*: a message still ``sending`` past its lease belongs to a worker that died
  during its SMTP transaction: it may or may not have reached the recipient, so it is
  **never resent**: it becomes ``failed`` with failure type ``mail_unknown``.

Every attempt of a message carries the same Message-ID (the signed trace token), so the
rare SMTP-level duplicate (connection lost after the server accepted ``DATA`` but before
its reply arrived — a temporary failure, retried) is detectable downstream.

Transports: ``smtp`` when ``NURTURE_SMTP_URL`` is set (one pooled transport per process),
otherwise the database ``outbox``: "sending" only marks the row sent; the row with its raw
source *is* the outbox.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity
from nurture.channels.email import service
from nurture.channels.email.models import MailMessage
from nurture.channels.email.receive import apply_auto_blacklist
from nurture.channels.email.transports import (
    FAILURE_SMTP,
    SENT,
    Delivery,
    SendResult,
    SmtpTransport,
    Transport,
    decide,
)
from nurture.channels.email.transports import Outcome as SendOutcome
from nurture.channels.queue import (
    DEFAULT_LEASE_SECONDS,
    DeliveryResult,
    claim_queued,
    deliver_round,
    deliver_rounds,
    fail_trace,
    recover_interrupted,
    stamp_sent,
    update_claimed,
)
from nurture.engine.events import record_event
from nurture.engine.models import Trace

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=DEFAULT_LEASE_SECONDS)
DEFAULT_LIMIT = 500
FAILURE_UNKNOWN = "mail_unknown"


class DatabaseOutbox:
    """The default transport: the message row (with its raw source) is the outbox."""

    name = "outbox"

    def send(self, message: Any, *, envelope_from: str, recipients: Sequence[str]) -> SendResult:
        return SENT

    def close(self) -> None:
        pass


_transport: Transport | None = None
_transport_lock = threading.Lock()


def reset_transport() -> None:
    """Forget the process transport (after :func:`service.configure`)."""
    global _transport
    with _transport_lock:
        old, _transport = _transport, None
    if old is not None:
        old.close()


def default_transport() -> Transport:
    """``smtp`` from ``NURTURE_SMTP_URL`` (pooled, one per process), else the outbox."""
    global _transport
    with _transport_lock:
        if _transport is None:
            url = service.email_context().settings.extra.get("NURTURE_SMTP_URL", "").strip()
            _transport = SmtpTransport.from_url(url) if url else DatabaseOutbox()
        return _transport


@dataclass(frozen=True)
class _Claimed:
    id: int
    trace_id: int
    email: str
    recipient: str
    envelope_from: str
    raw: bytes
    attempts: int


def claim(session: Session, *, now: datetime, limit: int, token: str, lease: timedelta) -> list[_Claimed]:
    rows = claim_queued(
        session, MailMessage, now=now, limit=limit, token=token, lease=lease,
        columns=("trace_id", "email", "recipient", "envelope_from", "raw", "attempts"),
    )
    return [_Claimed(r[0], r[1], r[2], r[3], r[4], r[5] or b"", r[6]) for r in rows]


class EmailChannel:
    """The email channel of the delivery core (:class:`nurture.channels.queue.Channel`)."""

    name = "email"
    limit = DEFAULT_LIMIT
    model = MailMessage

    def __init__(self, transport: Transport, *, keep_source: bool) -> None:
        self.transport = transport
        self.keep_source = keep_source

    def claim(self, session: Session, *, now: datetime, limit: int, token: str, lease: timedelta) -> list[_Claimed]:
        return claim(session, now=now, limit=limit, token=token, lease=lease)

    def send(self, item: _Claimed, *, now: datetime) -> Delivery:
        try:
            sent = self.transport.send(item.raw, envelope_from=item.envelope_from, recipients=[item.recipient])
        except Exception as exc:  # a transport bug must not lose the round
            log.exception("transport %s failed on message %s", self.transport.name, item.id)
            sent = SendResult(SendOutcome.TEMPORARY, f"{type(exc).__name__}: {exc}")
        return decide(sent, item.attempts, now)

    def recover(self, session: Session, *, now: datetime) -> int:
        return recover_interrupted(
            session,
            MailMessage,
            now=now,
            trace_failure=FAILURE_UNKNOWN,
            message_values={"failure_type": FAILURE_UNKNOWN},
        )

    def record(
        self,
        session: Session,
        outcomes: Sequence[tuple[_Claimed, Delivery]],
        *,
        token: str,
        now: datetime,
        result: DeliveryResult,
    ) -> None:
        for c, d in outcomes:
            if d.state == "sent":
                values: dict[str, Any] = {"state": "sent", "sent_at": now, "failure_reason": None}
                values["transport"] = self.transport.name[:16]
                if not self.keep_source:
                    values["raw"] = None
                if update_claimed(session, MailMessage, c.id, token=token, now=now, **values):
                    stamp_sent(session, c.trace_id, now=now)
                    result.sent += 1
            elif d.state == "retry":
                if update_claimed(
                    session, MailMessage, c.id, token=token, now=now,
                    state="queued", next_attempt_at=d.retry_at, failure_reason=d.reason[:1000],
                ):
                    result.retried += 1
            elif update_claimed(
                session, MailMessage, c.id, token=token, now=now,
                state="failed", failure_type=d.failure_type, failure_reason=d.reason[:1000],
            ):
                fail_trace(
                    session,
                    c.trace_id,
                    message=f"Not delivered: {d.reason}",
                    failure_type=d.failure_type or FAILURE_SMTP,
                )
                # a send-time refusal of a campaign email counts as a bounce: bounce children
                # run, others cancel (a transactional email sent by an action step has no
                # message events)
                if _sent_by_email_step(session, c.trace_id):
                    record_event(session, trace_id=c.trace_id, event="bounce", now=now)
                apply_auto_blacklist(session, email=c.email, now=now)
                result.failed += 1


def _sent_by_email_step(session: Session, trace_id: int) -> bool:
    kind = session.scalar(
        select(Activity.activity_type)
        .join(Trace, Trace.activity_id == Activity.id)
        .where(Trace.id == trace_id)
    )
    return kind == "email"


def email_channel(transport: Transport | None = None) -> EmailChannel:
    """The email channel with ``transport`` (default: the process transport)."""
    transport = transport or default_transport()
    keep_source = transport.name == "outbox" or service.email_context().keep_sent_source
    return EmailChannel(transport, keep_source=keep_source)


def deliver_queued(
    db: Any,
    *,
    now: datetime,
    transport: Transport | None = None,
    limit: int = DEFAULT_LIMIT,
    lease: timedelta | None = None,
    worker_id: str = "deliver",
) -> DeliveryResult:
    """One round: recover, then claim, send and record up to ``limit`` messages one by one
    (:func:`nurture.channels.queue.deliver_round`)."""
    return deliver_round(
        db, email_channel(transport), now=now, limit=limit, worker_id=worker_id, lease=lease
    )


def deliver_due(
    db: Any,
    *,
    now: datetime,
    transport: Transport | None = None,
    limit: int = DEFAULT_LIMIT,
    lease: timedelta | None = None,
    worker_id: str = "deliver",
    max_rounds: int = 1000,
) -> DeliveryResult:
    """Rounds of :func:`deliver_queued` until nothing due is left."""
    return deliver_rounds(
        db,
        email_channel(transport),
        now=now,
        limit=limit,
        worker_id=worker_id,
        lease=lease,
        max_rounds=max_rounds,
    )
