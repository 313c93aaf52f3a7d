"""A plugin channel on the shared outbox: queue in the executor, send after commit.

A channel package needs two things, and no table or migration of its own:

1. an executor (entry-point group ``nurture.executors``, the activity type) that composes
   one message per trace and queues it with :func:`queue_messages` — in the engine's
   batch transaction, so a rolled-back batch queued nothing, and once per trace
   (``UNIQUE(trace_id)``);
2. an :class:`OutboxChannel` (entry-point group ``nurture.channels``, the channel name)
   around its ``send(message: Message) -> SendResult``: one hand-over to the provider,
   called by the delivery core (:func:`nurture.channels.queue.deliver_round`) outside any
   transaction, right after the message was claimed.

The core does the rest, as for email and SMS: claim with a lease renewed by a heartbeat,
record each outcome before the next claim, and

* ``sent``: the row is ``sent`` (``provider_id`` kept), the trace's ``sent_at`` stamped;
* ``retry``: back to ``queued`` after ``retry_after`` seconds, else the channel's
  ``retry_delays`` (by attempt), until ``max_attempts``, when it fails;
* ``failed``: the row is ``failed`` and its trace ``error`` with the reason (failure type
  ``<channel>_failed``);
* a send that raises is a ``retry`` (a bug must not lose the round);
* a row still ``sending`` past its lease (its worker died during ``send``) is never
  resent: it fails with the failure type ``<channel>_unknown``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import insert
from sqlalchemy.orm import Session

from nurture.channels.messages import MessageChannel, Outcome
from nurture.channels.outbox.models import ChannelMessage
from nurture.channels.queue import DEFAULT_LIMIT, claim_queued, recover_interrupted
from nurture.engine.executors import ExecutionBatch

log = logging.getLogger(__name__)

#: default waits before attempts 2, 3, … of a message (seconds)
RETRY_DELAYS: tuple[float, ...] = (60, 300, 900, 3600, 10800)
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class NewMessage:
    """A message to queue: its trace, the recipient and the channel's JSON payload."""

    trace_id: int
    recipient: str
    payload: Mapping[str, Any] = field(default_factory=dict)


def queue_messages(batch: ExecutionBatch, channel: str, messages: Iterable[NewMessage]) -> int:
    """Queue ``messages`` of ``channel`` in the batch's transaction (delivered after commit);
    how many. Only traces of ``batch`` may be given."""
    tests = {t.id: t.is_test for t in batch.traces}
    rows = []
    for message in messages:
        if message.trace_id not in tests:
            raise ValueError(f"trace {message.trace_id} is not in the batch")
        rows.append(
            {
                "channel": channel,
                "trace_id": message.trace_id,
                "campaign_id": batch.campaign.id,
                "activity_id": batch.activity.id,
                "is_test": tests[message.trace_id],
                "recipient": message.recipient,
                "payload": json.dumps(dict(message.payload), separators=(",", ":")),
                "state": "queued",
                "attempts": 0,
                "next_attempt_at": batch.now,
                "created_at": batch.now,
                "updated_at": batch.now,
            }
        )
    if rows:
        batch.session.execute(insert(ChannelMessage), rows)
    return len(rows)


@dataclass(frozen=True)
class Message:
    """A claimed message, as ``send`` gets it (``attempts`` counts this one)."""

    id: int
    channel: str
    trace_id: int
    recipient: str
    payload: dict[str, Any]
    attempts: int
    is_test: bool


@dataclass(frozen=True)
class SendResult:
    """What one hand-over did: ``sent``, ``retry`` (a temporary failure) or ``failed``."""

    status: Literal["sent", "retry", "failed"]
    reason: str = ""
    provider_id: str | None = None
    #: seconds before the next attempt (``retry``; default: the channel's delays)
    retry_after: float | None = None


Sender = Callable[[Message], SendResult]


class OutboxChannel(MessageChannel[Message, SendResult]):
    """A delivery channel (:class:`nurture.channels.queue.Channel`) of the shared outbox:
    the rows of ``channel_message`` named ``name``, each handed to ``send``; outcomes are
    recorded by :class:`~nurture.channels.messages.MessageChannel`."""

    model = ChannelMessage
    columns = ("channel", "trace_id", "recipient", "payload", "attempts", "is_test")

    def __init__(
        self,
        name: str,
        send: Sender,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        if not retry_delays:
            raise ValueError("retry_delays: at least one delay")
        self.name = name
        self.sender = send
        self.max_attempts = max(1, max_attempts)
        self.retry_delays = tuple(retry_delays)
        self.limit = limit
        self.scope = ChannelMessage.channel == name
        self.failure_failed = f"{name}_failed"
        self.failure_interrupted = f"{name}_unknown"

    def __repr__(self) -> str:
        return f"OutboxChannel({self.name!r})"

    def retry_delay(self, attempts: int) -> timedelta:
        """The wait after a temporary failure of attempt ``attempts``."""
        index = min(max(attempts, 1), len(self.retry_delays)) - 1
        return timedelta(seconds=self.retry_delays[index])

    @classmethod
    def item(cls, row: Sequence[Any]) -> Message:
        return Message(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], bool(row[6]))

    def claim(self, session: Session, *, now: datetime, limit: int, token: str, lease: timedelta) -> list[Message]:
        rows = claim_queued(
            session, ChannelMessage, now=now, limit=limit, token=token, lease=lease,
            columns=self.columns, where=self.scope,
        )
        return [self.item(row) for row in rows]

    def send(self, item: Message, *, now: datetime) -> SendResult:
        try:
            got = self.sender(item)
        except Exception as exc:  # a plugin bug must not lose the round
            log.exception("channel %s failed on message %s", self.name, item.id)
            return SendResult("retry", f"{type(exc).__name__}: {exc}")
        if not isinstance(got, SendResult):
            return SendResult("failed", f"channel {self.name!r} returned {got!r}")
        return got

    def recover(self, session: Session, *, now: datetime) -> int:
        return recover_interrupted(
            session, ChannelMessage, now=now, trace_failure=self.failure_interrupted, where=self.scope
        )

    def outcome(self, item: Message, out: SendResult, *, now: datetime) -> Outcome:
        values = {"provider_id": out.provider_id}
        reason = out.reason or out.status
        if out.status == "sent":
            return Outcome("sent", values=values)
        if out.status == "retry" and item.attempts < self.max_attempts:
            wait = (
                timedelta(seconds=max(out.retry_after, 0))
                if out.retry_after is not None
                else self.retry_delay(item.attempts)
            )
            return Outcome("retry", reason, retry_at=now + wait)
        if out.status == "retry":
            reason = f"after {item.attempts} attempt(s): {reason}"
        return Outcome("failed", reason, failure_type=self.failure_failed, values=values)
