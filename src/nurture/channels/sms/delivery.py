"""Delivery of queued SMS, after the batch that queued them committed (as for email).

:class:`SmsChannel` is the channel the delivery entry points run
(:mod:`nurture.channels.delivery`). The loop — claim a message right before handing it to the provider, record its
outcome in the transaction that claims the next one, short leases renewed by a heartbeat,
recovery of interrupted sends — is the shared delivery core of
:mod:`nurture.channels.queue`, recording an outcome the shared
:class:`~nurture.channels.messages.MessageChannel`. This module is the SMS
:class:`SmsChannel` and the process provider (:data:`PROVIDER`):

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from nurture.channels.context import ProcessTransport
from nurture.channels.messages import MessageChannel, Outcome
from nurture.channels.queue import DEFAULT_LEASE_SECONDS
from nurture.channels.sms.context import SMS, sms_context
from nurture.channels.sms.models import SmsMessage
from nurture.channels.sms.providers import (
    SmsConfigError,
    SmsProvider,
    SmsSendResult,
    provider_from_settings,
)
from nurture.engine.events import record_event

log = logging.getLogger(__name__)

FAILURE_SERVER = "sms_server"
FAILURE_UNKNOWN = "sms_unknown"

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


def _provider() -> SmsProvider:
    """``http`` when ``NURTURE_SMS_URL`` is set, else the outbox.

    ``NURTURE_SMS_BACKOFF`` (seconds, default 0.5) is the first in-request retry delay of the
    ``http`` provider.
    """
    extra = sms_context().settings.extra
    kwargs: dict[str, Any] = {}
    backoff = extra.get("NURTURE_SMS_BACKOFF", "").strip()
    if backoff:
        kwargs["backoff"] = float(backoff)
    return provider_from_settings(extra, **kwargs)


#: the process provider, made from the SMS context on first use
PROVIDER: ProcessTransport[SmsProvider] = ProcessTransport(_provider)
SMS.on_change(PROVIDER.reset)
default_provider = PROVIDER.get


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


class SmsChannel(MessageChannel[_Claimed, SmsSendResult]):
    """The SMS channel of the delivery core (:class:`nurture.channels.queue.Channel`)."""

    name = "sms"
    model = SmsMessage
    columns = ("trace_id", "to_number", "body", "attempts", "transactional")
    failure_unknown = FAILURE_UNKNOWN

    def __init__(self, provider: SmsProvider | None = None) -> None:
        self.provider = provider or default_provider()
        self.ctx = sms_context()

    @classmethod
    def item(cls, row: Sequence[Any]) -> _Claimed:
        return _Claimed(row[0], row[1], row[2], row[3], row[4], bool(row[5]))

    def send(self, item: _Claimed, *, now: datetime) -> SmsSendResult:
        try:
            return self.provider.send(
                item.to_number, item.body, status_callback=self.ctx.status_callback_url(item.trace_id)
            )
        except Exception as exc:  # a provider bug must not lose the round
            log.exception("SMS provider %s failed on message %s", self.provider.name, item.id)
            return SmsSendResult("temporary_failure", reason=f"{type(exc).__name__}: {exc}")

    def outcome(self, item: _Claimed, out: SmsSendResult, *, now: datetime) -> Outcome:
        values = {"provider": self.provider.name, "provider_id": out.provider_id}
        if out.status == "sent":
            return Outcome("sent", values=values)
        reason = out.reason or out.status
        if out.status == "temporary_failure" and item.attempts < MAX_ATTEMPTS:
            return Outcome("retry", reason, retry_at=now + retry_delay(item.attempts))
        return Outcome("failed", reason, failure_type=FAILURE_SERVER, values=values)

    def failed(self, session: Session, item: _Claimed, *, now: datetime) -> None:
        if not item.transactional:
            # a send-time refusal counts as a bounce: bounce children run, others cancel
            record_event(session, trace_id=item.trace_id, event="sms_bounce", now=now)


#: claim up to ``limit`` due messages (``session``, ``now``, ``limit``, ``token``, ``lease``)
claim = SmsChannel.claim_rows
