"""Delivery of queued email, after the batch that queued them committed.

:func:`deliver_due` runs delivery rounds until nothing is due (the engine loop calls them after each drain of due traces: ``nurture tick``,
``nurture worker``, the in-process runner).

The loop itself — claim one message right before handing it over, record its outcome in
the transaction that claims the next one, short leases renewed by a heartbeat, recovery of
interrupted sends — is the shared delivery core of :mod:`nurture.channels.queue` (the same
for SMS and webhooks), and recording an outcome is the shared
:class:`~nurture.channels.messages.MessageChannel`. This module is the email
:class:`EmailChannel` and the process transport (:data:`TRANSPORT`):

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

Transports: ``smtp`` when ``NURTURE_SMTP_URL`` is set (one pooled
transport per process), otherwise the database ``outbox``: "sending" only marks the row
sent; the row with its raw source *is* the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity
from nurture.channels.context import ProcessTransport
from nurture.channels.email.bounces import apply_auto_blacklist
from nurture.channels.email.context import EMAIL, email_context
from nurture.channels.email.models import MailMessage
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
from nurture.channels.messages import MessageChannel, Outcome
from nurture.channels.queue import DEFAULT_LEASE_SECONDS, DeliveryResult, deliver_rounds
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


def _transport() -> Transport:
    """``smtp`` from ``NURTURE_SMTP_URL`` (pooled, one per process), else the outbox."""
    url = email_context().settings.extra.get("NURTURE_SMTP_URL", "").strip()
    return SmtpTransport.from_url(url) if url else DatabaseOutbox()


def _close(transport: Transport) -> None:
    transport.close()


#: the process transport, made from the email context on first use
TRANSPORT: ProcessTransport[Transport] = ProcessTransport(_transport, close=_close)
EMAIL.on_change(TRANSPORT.reset)
default_transport = TRANSPORT.get
#: forget (and close) the process transport
reset_transport = TRANSPORT.reset


@dataclass(frozen=True)
class _Claimed:
    id: int
    trace_id: int
    email: str
    recipient: str
    envelope_from: str
    raw: bytes
    attempts: int


class EmailChannel(MessageChannel[_Claimed, Delivery]):
    """The email channel of the delivery core (:class:`nurture.channels.queue.Channel`)."""

    name = "email"
    limit = DEFAULT_LIMIT
    model = MailMessage
    columns = ("trace_id", "email", "recipient", "envelope_from", "raw", "attempts")
    failure_unknown = FAILURE_UNKNOWN
    unknown_values = {"failure_type": FAILURE_UNKNOWN}

    def __init__(self, transport: Transport, *, keep_source: bool) -> None:
        self.transport = transport
        self.keep_source = keep_source

    @classmethod
    def item(cls, row: Sequence[Any]) -> _Claimed:
        return _Claimed(row[0], row[1], row[2], row[3], row[4], row[5] or b"", row[6])

    def send(self, item: _Claimed, *, now: datetime) -> Delivery:
        try:
            sent = self.transport.send(item.raw, envelope_from=item.envelope_from, recipients=[item.recipient])
        except Exception as exc:  # a transport bug must not lose the round
            log.exception("transport %s failed on message %s", self.transport.name, item.id)
            sent = SendResult(SendOutcome.TEMPORARY, f"{type(exc).__name__}: {exc}")
        return decide(sent, item.attempts, now)

    def outcome(self, item: _Claimed, out: Delivery, *, now: datetime) -> Outcome:
        if out.state == "sent":
            values: dict[str, Any] = {"transport": self.transport.name[:16]}
            if not self.keep_source:
                values["raw"] = None
            return Outcome("sent", values=values)
        if out.state == "retry":
            return Outcome("retry", out.reason, retry_at=out.retry_at)
        return Outcome(
            "failed",
            out.reason,
            failure_type=out.failure_type or FAILURE_SMTP,
            values={"failure_type": out.failure_type},
        )

    def failed(self, session: Session, item: _Claimed, *, now: datetime) -> None:
        # a send-time refusal of a campaign email counts as a bounce: bounce children run,
        # others cancel (a transactional email sent by an action step has no message events)
        if _sent_by_email_step(session, item.trace_id):
            record_event(session, trace_id=item.trace_id, event="bounce", now=now)
        apply_auto_blacklist(session, email=item.email, now=now)


#: claim up to ``limit`` due messages (``session``, ``now``, ``limit``, ``token``, ``lease``)
claim = EmailChannel.claim_rows


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
    keep_source = transport.name == "outbox" or email_context().keep_sent_source
    return EmailChannel(transport, keep_source=keep_source)


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
    """Rounds of delivery (:func:`nurture.channels.queue.deliver_round`: recover, then
    claim, send and record up to ``limit`` messages one by one) until nothing due is left."""
    return deliver_rounds(
        db,
        email_channel(transport),
        now=now,
        limit=limit,
        worker_id=worker_id,
        lease=lease,
        max_rounds=max_rounds,
    )
