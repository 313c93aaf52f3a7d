"""Execution of due traces (SPEC §5.2, §5.3, §5.5, §5.6).

:func:`run_due` claims a batch of due traces with a lease in a short transaction
(PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite's ``BEGIN IMMEDIATE`` write lock), then
works on it in a second transaction, grouped by activity:

1. expired (now > schedule date + expiry) → ``canceled`` "expired";
2. one query per group finds the records still matching the applied filter; the others
   → ``rejected``;
3. ``*_not_*`` traces whose event already happened on the parent message → ``canceled``;
4. the rest are marked ``processed`` by an UPDATE that also checks the lease and the
   state, and only the rows that UPDATE returns are handed to the executor; a failure it
   reports → ``error``/``canceled``; the executor's writes share the transaction.
5. child traces for the processed ones, then completion of the participants.

Exactly once: a trace runs only if the UPDATE that checks ``state = 'scheduled'`` and
``claimed_by = me`` took it, in the same transaction as the executor's effects. A crashed
worker's transaction rolls back and its lease runs out, so the rows return to the queue.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, select, update
from sqlalchemy.orm import Session

from nurture import audience
from nurture.campaigns.models import NOT_TRIGGERS, Activity, Campaign
from nurture.campaigns.service import applied_domain, children_of
from nurture.campaigns.timing import add_interval
from nurture.engine.executors import DueTrace, ExecutionBatch, Outcome, get_executor
from nurture.engine.models import Participant, Trace
from nurture.engine.schedule import (
    MSG_EXPIRED,
    MSG_REJECTED,
    NOT_CANCEL_MESSAGE,
    TRIGGER_STAT,
    chunks,
    complete_participants,
    create_children,
)
from nurture.records.catalog import REGISTRY

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)


@dataclass
class BatchResult:
    claimed: int = 0
    processed: int = 0
    rejected: int = 0
    canceled: int = 0
    error: int = 0

    def add(self, other: BatchResult) -> None:
        self.claimed += other.claimed
        self.processed += other.processed
        self.rejected += other.rejected
        self.canceled += other.canceled
        self.error += other.error


def _due_ids(dialect: str, *, now: datetime, limit: int) -> Any:
    stmt = (
        select(Trace.id)
        .join(Participant, Participant.id == Trace.participant_id)
        .join(Campaign, Campaign.id == Trace.campaign_id)
        .where(
            Trace.state == "scheduled",
            Trace.schedule_date <= now,
            Trace.is_test == false(),
            (Trace.lease_until.is_(None)) | (Trace.lease_until < now),
            Participant.state == "running",
            Campaign.state == "running",
        )
        .order_by(Trace.schedule_date, Trace.id)
        .limit(limit)
    )
    if dialect == "postgresql":
        stmt = stmt.with_for_update(of=Trace, skip_locked=True)
    return stmt


def claim(
    session: Session,
    *,
    now: datetime,
    limit: int,
    worker_id: str,
    lease: timedelta = DEFAULT_LEASE,
) -> list[tuple[int, DueTrace]]:
    """Take up to ``limit`` due traces for ``worker_id``: [(activity_id, trace)]."""
    dialect = session.get_bind().dialect.name
    due = _due_ids(dialect, now=now, limit=limit)
    if dialect == "postgresql":
        due = due.scalar_subquery()
    stmt = (
        update(Trace)
        .where(Trace.id.in_(due))
        .values(claimed_by=worker_id, lease_until=now + lease)
        .returning(
            Trace.id,
            Trace.activity_id,
            Trace.participant_id,
            Trace.res_id,
            Trace.parent_id,
            Trace.schedule_date,
            Trace.is_test,
        )
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(stmt).all()
    return [
        (row.activity_id, DueTrace(row.id, row.participant_id, row.res_id, row.parent_id, row.schedule_date, row.is_test))
        for row in rows
    ]


def release_leases(session: Session, *, worker_id: str) -> int:
    """Give back the traces ``worker_id`` claimed but did not finish."""
    result = session.execute(
        update(Trace)
        .where(Trace.claimed_by == worker_id, Trace.state == "scheduled")
        .values(claimed_by=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def run_due(
    db: Any,
    *,
    now: datetime,
    limit: int = 500,
    worker_id: str,
    lease: timedelta = DEFAULT_LEASE,
) -> BatchResult:
    """Claim and execute one batch of due traces. ``db`` is a :class:`nurture.db.Database`."""
    with db.transaction() as session:
        claimed = claim(session, now=now, limit=limit, worker_id=worker_id, lease=lease)
    result = BatchResult(claimed=len(claimed))
    if not claimed:
        return result
    groups: dict[int, list[DueTrace]] = defaultdict(list)
    for activity_id, trace in claimed:
        groups[activity_id].append(trace)
    try:
        with db.transaction() as session:
            for activity_id, traces in groups.items():
                result.add(
                    process_group(
                        session, activity_id=activity_id, traces=traces, now=now, worker_id=worker_id
                    )
                )
    except Exception:
        log.exception("batch of %d traces failed; releasing its leases", len(claimed))
        with db.transaction() as session:
            release_leases(session, worker_id=worker_id)
        raise
    return result


def _finalise(
    session: Session,
    ids: Sequence[int],
    *,
    state: str,
    message: str | None,
    now: datetime,
    worker_id: str | None,
) -> list[int]:
    """Move ``ids`` out of ``scheduled`` if this worker still holds them; returns the ids moved."""
    moved: list[int] = []
    for part in chunks(list(ids)):
        conditions: list[Any] = [Trace.id.in_(part), Trace.state == "scheduled"]
        if worker_id is not None:
            conditions.append(Trace.claimed_by == worker_id)
        stmt = (
            update(Trace)
            .where(*conditions)
            .values(
                state=state,
                state_message=message,
                executed_at=now,
                claimed_by=None,
                lease_until=None,
            )
            .returning(Trace.id)
            .execution_options(synchronize_session=False)
        )
        moved.extend(session.scalars(stmt))
    return moved


def process_group(
    session: Session,
    *,
    activity_id: int,
    traces: list[DueTrace],
    now: datetime,
    worker_id: str | None,
    check_expiry: bool = True,
) -> BatchResult:
    """Run one activity on claimed traces (``worker_id`` None: test mode, no lease check)."""
    result = BatchResult()
    activity = session.get(Activity, activity_id)
    if activity is None:  # deleted meanwhile: its traces went with it
        return result
    campaign = session.get(Campaign, activity.campaign_id)
    assert campaign is not None
    remaining = list(traces)

    # 1. expiry, counted from the planned time
    if check_expiry and activity.expiry_number is not None:
        number, unit = activity.expiry_number, activity.expiry_unit
        expired = [
            t for t in remaining if t.schedule_date is None or now > add_interval(t.schedule_date, number, unit)
        ]
        if expired:
            result.canceled += len(
                _finalise(session, [t.id for t in expired], state="canceled", message=MSG_EXPIRED, now=now, worker_id=worker_id)
            )
            gone = {t.id for t in expired}
            remaining = [t for t in remaining if t.id not in gone]

    # 2. applied filter: one query for the whole group
    if remaining:
        mdef = REGISTRY.target(campaign.model)
        orm = mdef.orm
        condition = audience.compile_domain(
            campaign.model, applied_domain(session, activity=activity), now=now
        )
        active = audience.active_condition(campaign.model, include_archived=campaign.include_archived)
        passing: set[int] = set()
        for part in chunks(sorted({t.res_id for t in remaining})):
            passing.update(session.scalars(select(orm.id).where(orm.id.in_(part), condition, active)))
        rejected = [t for t in remaining if t.res_id not in passing]
        if rejected:
            result.rejected += len(
                _finalise(session, [t.id for t in rejected], state="rejected", message=MSG_REJECTED, now=now, worker_id=worker_id)
            )
            remaining = [t for t in remaining if t.res_id in passing]

    # 3. "not" triggers whose event already happened on the parent message
    if remaining and activity.trigger_type in NOT_TRIGGERS:
        stat = TRIGGER_STAT[activity.trigger_type]
        parent_ids = sorted({t.parent_id for t in remaining if t.parent_id is not None})
        happened: dict[int, str] = {}
        for part in chunks(parent_ids):
            for pid, stat_at, bounced_at in session.execute(
                select(Trace.id, stat, Trace.bounced_at).where(Trace.id.in_(part))
            ):
                if stat_at is not None:
                    happened[pid] = NOT_CANCEL_MESSAGE[activity.trigger_type]
                elif bounced_at is not None:
                    happened[pid] = "Parent activity mail bounced"
        hit = [t for t in remaining if t.parent_id in happened]
        by_message: dict[str, list[int]] = defaultdict(list)
        for t in hit:
            assert t.parent_id is not None
            by_message[happened[t.parent_id]].append(t.id)
        for message, ids in by_message.items():
            result.canceled += len(
                _finalise(session, ids, state="canceled", message=message, now=now, worker_id=worker_id)
            )
        remaining = [t for t in remaining if t.parent_id not in happened]

    # 4. take the rest (lease + state checked in the same UPDATE), then execute
    participants = [t.participant_id for t in traces]
    if remaining:
        owned = set(
            _finalise(session, [t.id for t in remaining], state="processed", message=None, now=now, worker_id=worker_id)
        )
        batch = [t for t in remaining if t.id in owned]
        outcomes = _execute(session, campaign=campaign, activity=activity, traces=batch, now=now)
        failed: dict[tuple[str, str], list[int]] = defaultdict(list)
        for trace_id, outcome in outcomes.items():
            if trace_id in owned and outcome.state != "processed":
                failed[(outcome.state, outcome.message)].append(trace_id)
        failed_ids: set[int] = set()
        for (state, message), ids in failed.items():
            for part in chunks(ids):
                session.execute(
                    update(Trace)
                    .where(Trace.id.in_(part))
                    .values(state=state, state_message=message)
                    .execution_options(synchronize_session=False)
                )
            failed_ids.update(ids)
            if state == "error":
                result.error += len(ids)
            else:
                result.canceled += len(ids)
        done = [t.id for t in batch if t.id not in failed_ids]
        result.processed += len(done)
        # 5. children of the processed traces
        create_children(
            session, children=children_of(session, activity_id=activity.id), parent_trace_ids=done, now=now
        )
    complete_participants(session, now=now, participant_ids=participants)
    return result


def _execute(
    session: Session,
    *,
    campaign: Campaign,
    activity: Activity,
    traces: list[DueTrace],
    now: datetime,
) -> dict[int, Outcome]:
    if not traces:
        return {}
    executor = get_executor(activity.activity_type)
    if executor is None:
        message = f"No executor for {activity.activity_type} activities"
        return {t.id: Outcome("error", message) for t in traces}
    batch = ExecutionBatch(session=session, campaign=campaign, activity=activity, traces=traces, now=now)
    try:
        with session.begin_nested():
            outcomes = dict(executor(batch))
    except Exception as exc:  # the executor's writes were rolled back with the savepoint
        log.warning("executor for activity %s failed: %s", activity.id, exc)
        kind = "server action" if activity.activity_type == "action" else activity.activity_type
        message = f"Exception in {kind}: {exc}"
        return {t.id: Outcome("error", message) for t in traces}
    return outcomes

