"""Executors: what running an activity means, one per activity type.

An executor receives a batch of traces of one activity (all already checked for expiry,
filter and ``*_not_*`` events, and already marked ``processed`` in the same transaction)
and returns the outcome of the traces that did *not* succeed; traces it does not mention
are processed. It runs inside the batch's transaction (within a savepoint), so its writes
commit with the trace states or not at all; an exception turns every trace of the batch
into ``error``. The channels and the server actions declare theirs as entry points (group
``nurture.executors``, see :func:`get_executor`); the engine imports none of them.

Exactly once: a trace reaches an executor only from the UPDATE that moved it out of
``scheduled`` under its batch's lease, in the transaction the executor writes in. An
executor that talks to the outside world should therefore only *record* the message
(an outbox row keyed by the trace id, unique) and let a transport send it after commit,
so a rolled-back batch never sent anything and a retried send is recognised by its key.

Set-based executors (like ``update_record``) use :attr:`ExecutionBatch.record_ids`, a
sub-query, and never load the batch; per-message executors read
:attr:`ExecutionBatch.traces`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from nurture.campaigns.activity_types import EXECUTORS_GROUP
from nurture.campaigns.models import Activity, Campaign
from nurture.engine.models import Trace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueTrace:
    id: int
    participant_id: int
    res_id: int
    parent_id: int | None
    schedule_date: datetime | None
    is_test: bool


@dataclass(frozen=True)
class Outcome:
    """A trace that did not succeed: ``error`` or ``canceled``, with the human reason."""

    state: str
    message: str


@dataclass
class ExecutionBatch:
    """The traces of one activity being executed now, in the batch's transaction.

    ``trace_filter`` selects exactly these trace rows, so set-based executors can work with
    sub-queries (:attr:`record_ids`) and never ship ids through Python; per-message
    executors read :attr:`traces`.
    """

    session: Session
    campaign: Campaign
    activity: Activity
    trace_filter: ColumnElement[bool]
    now: datetime
    _traces: list[DueTrace] | None = field(default=None, repr=False)

    @property
    def record_ids(self) -> Select[tuple[int]]:
        """Sub-query of the target record ids of the batch."""
        return select(Trace.res_id).where(self.trace_filter)

    @property
    def traces(self) -> list[DueTrace]:
        if self._traces is None:
            rows = self.session.execute(
                select(
                    Trace.id,
                    Trace.participant_id,
                    Trace.res_id,
                    Trace.parent_id,
                    Trace.schedule_date,
                    Trace.is_test,
                )
                .where(self.trace_filter)
                .order_by(Trace.id)
            ).all()
            self._traces = [DueTrace(*row) for row in rows]
        return self._traces

    @property
    def res_ids(self) -> list[int]:
        return [t.res_id for t in self.traces]


Executor = Callable[[ExecutionBatch], Mapping[int, Outcome]]

_executors: dict[str, Executor] = {}


def register_executor(activity_type: str, executor: Executor) -> Executor:
    """Make ``executor`` run the activities of ``activity_type`` (replaces any previous one)."""
    _executors[activity_type] = executor
    return executor


def get_executor(activity_type: str) -> Executor | None:
    """The executor of ``activity_type``: registered, or else loaded from the installed
    ``nurture.executors`` entry point of that name (the channels, the server actions and
    plugins declare theirs there, so the engine imports none of them)."""
    executor = _executors.get(activity_type)
    if executor is None:
        for point in entry_points(group=EXECUTORS_GROUP, name=activity_type):
            try:
                loaded = point.load()
            except Exception:
                log.exception("executor %s (%s) could not be loaded", point.name, point.value)
                continue
            if callable(loaded):
                executor = _executors.setdefault(activity_type, loaded)
                break
            log.error("executor %s (%s) is not callable", point.name, point.value)
    return executor
