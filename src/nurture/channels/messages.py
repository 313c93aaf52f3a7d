"""A message channel on the delivery core (:mod:`nurture.channels.queue`): what email and
SMS share, so that each supplies only what differs.

:class:`MessageChannel` claims queue rows into the channel's items, and records each
hand-over's outcome the same way for every channel, checking the claim token:

* ``sent`` — the message ``sent`` (``sent_at`` stamped, the failure cleared), the trace's
  ``sent_at`` stamped;
* ``retry`` — back to ``queued`` with ``next_attempt_at`` (a temporary failure);
* ``failed`` — the message ``failed``, the trace ``error`` with the reason and the
  channel's failure type, then the channel's :meth:`~MessageChannel.failed` hook (a bounce
  event for a marketing message, …).

A row left ``sending`` past its lease is failed with the channel's "unknown" failure type,
never resent (:func:`~nurture.channels.queue.recover_interrupted`).

A channel supplies: its table (``model``) and the ``columns`` sending needs, how a claimed
row becomes an item (:meth:`~MessageChannel.item`), the hand-over (``send``, network, no
transaction open, never raises) and what its result means (:meth:`~MessageChannel.outcome`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from sqlalchemy.orm import Session

from nurture.channels.queue import (
    DeliveryResult,
    claim_queued,
    fail_trace,
    recover_interrupted,
    stamp_sent,
    update_claimed,
)


class QueuedItem(Protocol):
    """A claimed message: its row and its trace."""

    @property
    def id(self) -> int: ...

    @property
    def trace_id(self) -> int: ...


Item = TypeVar("Item", bound=QueuedItem)
Out = TypeVar("Out")


@dataclass(frozen=True)
class Outcome:
    """What one hand-over means for the message (see the module doc)."""

    state: Literal["sent", "retry", "failed"]
    reason: str = ""
    #: ``retry``: when to try again
    retry_at: datetime | None = None
    #: ``failed``: the trace's failure type
    failure_type: str = ""
    #: more columns of the message row (transport, provider id, …)
    values: Mapping[str, Any] = field(default_factory=dict)


class MessageChannel(Generic[Item, Out]):
    """The shared part of a message channel (:class:`nurture.channels.queue.Channel`)."""

    name: str
    model: Any
    #: the columns of a claimed row after its id, in :meth:`item`'s order
    columns: ClassVar[tuple[str, ...]]
    #: the trace failure type of a message interrupted while sending
    failure_unknown: ClassVar[str]
    #: more columns of a message interrupted while sending
    unknown_values: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def item(cls, row: Sequence[Any]) -> Item:
        """The item of a claimed row: ``(id, *columns)``."""
        raise NotImplementedError

    @classmethod
    def claim_rows(
        cls, session: Session, *, now: datetime, limit: int, token: str, lease: timedelta
    ) -> list[Item]:
        """Claim up to ``limit`` due rows (:func:`~nurture.channels.queue.claim_queued`)."""
        rows = claim_queued(
            session, cls.model, now=now, limit=limit, token=token, lease=lease, columns=cls.columns
        )
        return [cls.item(row) for row in rows]

    def claim(
        self, session: Session, *, now: datetime, limit: int, token: str, lease: timedelta
    ) -> list[Item]:
        return self.claim_rows(session, now=now, limit=limit, token=token, lease=lease)

    def send(self, item: Item, *, now: datetime) -> Out:
        raise NotImplementedError

    def outcome(self, item: Item, out: Out, *, now: datetime) -> Outcome:
        """What the hand-over's result ``out`` means."""
        raise NotImplementedError

    def failed(self, session: Session, item: Item, *, now: datetime) -> None:
        """After a message failed for good (its trace is ``error``): bounce event, …"""

    def recover(self, session: Session, *, now: datetime) -> int:
        return recover_interrupted(
            session,
            self.model,
            now=now,
            trace_failure=self.failure_unknown,
            message_values=self.unknown_values,
        )

    def record(
        self, session: Session, outcomes: Sequence[tuple[Item, Out]], *, token: str, now: datetime, result: DeliveryResult
    ) -> None:
        for item, out in outcomes:
            self._record(session, item, self.outcome(item, out, now=now), token=token, now=now, result=result)

    def _record(
        self, session: Session, item: Item, outcome: Outcome, *, token: str, now: datetime, result: DeliveryResult
    ) -> None:
        model = self.model
        reason = outcome.reason[:1000]
        if outcome.state == "sent":
            if update_claimed(
                session, model, item.id, token=token, now=now,
                state="sent", sent_at=now, failure_reason=None, **outcome.values,
            ):
                stamp_sent(session, item.trace_id, now=now)
                result.sent += 1
        elif outcome.state == "retry":
            if update_claimed(
                session, model, item.id, token=token, now=now,
                state="queued", next_attempt_at=outcome.retry_at, failure_reason=reason, **outcome.values,
            ):
                result.retried += 1
        elif update_claimed(
            session, model, item.id, token=token, now=now,
            state="failed", failure_reason=reason, **outcome.values,
        ):
            fail_trace(
                session, item.trace_id, message=f"Not delivered: {outcome.reason}", failure_type=outcome.failure_type
            )
            self.failed(session, item, now=now)
            result.failed += 1
