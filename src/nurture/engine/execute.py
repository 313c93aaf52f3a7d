"""Execution of due traces (SPEC §5.2, §5.3, §5.5, §5.6).

:func:`run_due` works on one batch in **one** transaction: it selects the next due traces
(:func:`select_due`: PostgreSQL ``FOR UPDATE SKIP LOCKED``, so concurrent workers take
other rows; SQLite's ``BEGIN IMMEDIATE`` write lock excludes every other writer for the
whole transaction) and then works on them, grouped by activity, with set-based statements
that find the batch's rows by primary key (the ids travel as one array/JSON value):

1. expired (now > schedule date + expiry) → ``canceled`` "expired";
2. ``*_not_*`` traces whose event already happened on the parent message → ``canceled``;
3. one UPDATE takes the rest: ``processed`` when the record still matches the applied
   filter, else ``rejected`` (the filter is evaluated set-based, once per row, in the same
   statement); the UPDATE checks ``state = 'scheduled'`` and stamps ``claimed_by`` with
   the batch's token, so only rows it took are executed and each row is written once;
4. the executor runs on the processed rows (a failure it reports → ``error`` or
   ``canceled``; its writes share the transaction); children of the processed traces are
   created (``INSERT … SELECT`` from the batch's processed rows), then the participants
   that can complete (those of traces that left no child behind) complete.

Exactly once: a trace runs only if the UPDATE that checks ``state = 'scheduled'`` took it,
in the transaction that locked it and that holds the executor's effects. A crashed worker's
transaction rolls back as a whole: its rows were never written, so they are due again at
once, with no lease to wait for. A competing worker cannot take a locked row (SKIP LOCKED /
the SQLite write lock), and once the batch commits the rows are no longer scheduled.
Processed rows keep the token as a record of who ran them.

Leases (``claimed_by``/``lease_until`` with an expiry) remain for work that spans
transactions: :func:`claim` stamps rows in one transaction for :func:`process_group` to
run in a later one (only rows still holding the token are taken), and the due query skips
rows under a live lease; :func:`release_leases` gives such rows back.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Table,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from nurture import audience
from nurture.campaigns.activities import children_of
from nurture.campaigns.domains import applied_domain
from nurture.campaigns.models import NOT_TRIGGERS, Activity, Campaign
from nurture.campaigns.timing import subtract_interval
from nurture.engine.executors import ExecutionBatch, Outcome, get_executor
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


def due_conditions(now: datetime) -> list[ColumnElement[bool]]:
    """What makes a trace due at ``now`` (the engine's one definition)."""
    running_campaigns = select(Campaign.id).where(Campaign.state == "running")
    participant_running = exists().where(
        Participant.id == Trace.participant_id, Participant.state == "running"
    )
    return [
        Trace.state == "scheduled",
        Trace.schedule_date <= now,
        Trace.is_test == false(),
        (Trace.lease_until.is_(None)) | (Trace.lease_until < now),
        Trace.campaign_id.in_(running_campaigns),
        participant_running,
    ]


def due_backlog(
    session: Session, *, now: datetime, by: str = "activity", activity_ids: Sequence[int] | None = None
) -> dict[int, int]:
    """How many traces are due at ``now``, by activity id (``by="campaign"``: campaign id);
    only of ``activity_ids`` when given."""
    key = Trace.activity_id if by == "activity" else Trace.campaign_id
    where = due_conditions(now)
    if activity_ids is not None:
        where.append(Trace.activity_id.in_(list(activity_ids)))
    rows = session.execute(select(key, func.count()).where(*where).group_by(key))
    return {int(k): int(n) for k, n in rows}


def _due_ids(
    dialect: str,
    *,
    now: datetime,
    limit: int,
    with_activity: bool = False,
    activity_id: int | None = None,
) -> Any:
    """The next due traces (of ``activity_id`` only, when given), in schedule order.

    Written to walk the partial index on ``schedule_date`` (state scheduled) and stop at
    ``limit``: the campaign and participant conditions are semi-joins, not joins, and the
    order is the index's own, so no sort of the whole backlog is ever needed.
    """
    columns: list[Any] = [Trace.activity_id, Trace.id] if with_activity else [Trace.id]
    stmt = (
        select(*columns)
        .where(*due_conditions(now))
        .order_by(Trace.schedule_date)
        .limit(limit)
    )
    if activity_id is not None:
        stmt = stmt.where(Trace.activity_id == activity_id)
    if dialect == "postgresql":
        stmt = stmt.with_for_update(of=Trace, skip_locked=True)
    return stmt


def new_token(worker_id: str) -> str:
    """A claim token unique to one batch: ``<worker id>:<random>`` (64 characters at most)."""
    return f"{worker_id[:48]}:{uuid.uuid4().hex[:12]}"


def claim(
    session: Session,
    *,
    now: datetime,
    limit: int,
    token: str,
    lease: timedelta = DEFAULT_LEASE,
) -> dict[int, list[int]]:
    """Stamp up to ``limit`` due traces with ``token``; returns {activity_id: [trace ids]}."""
    dialect = session.get_bind().dialect.name
    due = _due_ids(dialect, now=now, limit=limit)
    if dialect == "postgresql":
        due = due.scalar_subquery()
    table: Table = Trace.__table__  # type: ignore[assignment]
    # Core statement: the RETURNING rows need no ORM processing.
    rows = session.connection().execute(
        table.update()
        .where(table.c.id.in_(due))
        .values(claimed_by=token, lease_until=now + lease)
        .returning(table.c.activity_id, table.c.id)
    ).all()
    groups: dict[int, list[int]] = defaultdict(list)
    for activity_id, trace_id in rows:
        groups[activity_id].append(trace_id)
    return {activity_id: sorted(ids) for activity_id, ids in sorted(groups.items())}


def id_in(session: Session, ids: Sequence[int]) -> ColumnElement[bool]:
    """``trace.id IN ids`` as one bound value (an array on PostgreSQL, JSON on SQLite).

    A batch's rows are then found by primary key with a statement that compiles once,
    however many ids the batch has. On PostgreSQL the array is unnested in a sub-query
    (``= ANY(array)`` is estimated as a fraction of the table and planned as a sequential
    scan once batches are large; ``IN (SELECT unnest(…))`` gets a primary-key nested loop).
    """
    if session.get_bind().dialect.name == "postgresql":
        array = cast(literal(list(ids), ARRAY(Integer)), ARRAY(Integer))
        return Trace.id.in_(select(func.unnest(array)))
    values = func.json_each(json.dumps(list(ids))).table_valued("value")
    return Trace.id.in_(select(values.c.value))


def release_leases(session: Session, *, worker_id: str) -> int:
    """Give back the traces ``worker_id`` claimed but did not finish."""
    result = session.execute(
        update(Trace)
        .where(Trace.state == "scheduled", Trace.claimed_by.startswith(f"{worker_id[:48]}:"))
        .values(claimed_by=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def select_due(
    session: Session, *, now: datetime, limit: int, activity_id: int | None = None
) -> dict[int, list[int]]:
    """Lock up to ``limit`` due traces for this transaction; returns {activity_id: [trace ids]}.

    PostgreSQL locks the rows (``FOR UPDATE SKIP LOCKED``: concurrent workers take other
    rows); SQLite's ``BEGIN IMMEDIATE`` write lock already excludes every other writer.
    Nothing is written: the rows are worked on in the same transaction, so a crash simply
    rolls back and leaves them due.
    """
    dialect = session.get_bind().dialect.name
    rows = session.connection().execute(
        _due_ids(dialect, now=now, limit=limit, with_activity=True, activity_id=activity_id)
    ).all()
    groups: dict[int, list[int]] = defaultdict(list)
    for activity_id, trace_id in rows:
        groups[activity_id].append(trace_id)
    return {activity_id: sorted(ids) for activity_id, ids in sorted(groups.items())}


def run_due(
    db: Any,
    *,
    now: datetime,
    limit: int = 500,
    worker_id: str,
    lease: timedelta = DEFAULT_LEASE,
    activity_id: int | None = None,
) -> BatchResult:
    """Select and execute one batch of due traces in one transaction (only traces of
    ``activity_id`` when given: the Celery task "run due traces of activity X").

    ``db`` is a :class:`nurture.db.Database`. ``lease`` is accepted for compatibility: a
    batch no longer spans transactions, so it needs no lease (the row locks of the work
    transaction do that job, and a crash rolls everything back).
    """
    # A read-only probe first, so an idle worker never takes SQLite's write lock.
    with db.read() as session:
        if session.scalar(_due_ids("probe", now=now, limit=1, activity_id=activity_id)) is None:
            return BatchResult()
    token = new_token(worker_id)
    result = BatchResult()
    with db.transaction() as session:
        groups = select_due(session, now=now, limit=limit, activity_id=activity_id)
        result.claimed = sum(len(ids) for ids in groups.values())
        for activity_id, ids in groups.items():
            try:
                with session.begin_nested():
                    group = process_group(
                        session,
                        activity_id=activity_id,
                        trace_ids=ids,
                        token=token,
                        now=now,
                        locked=True,
                    )
            except OperationalError:
                raise  # transient (deadlock, lock timeout, lost connection): retry the batch
            except Exception as exc:
                # A group that cannot be processed (say, a filter that no longer
                # compiles) must not come back forever: its traces end in error.
                log.exception("activity %s: batch of %d traces failed", activity_id, len(ids))
                group = BatchResult(
                    error=_move(
                        session,
                        [id_in(session, ids)],
                        state="error",
                        message=f"Engine error: {exc}"[:1000],
                        now=now,
                        token=token,
                    )
                )
                complete_participants(
                    session,
                    now=now,
                    participant_filter=Participant.id.in_(
                        select(Trace.participant_id).where(id_in(session, ids)).scalar_subquery()
                    ),
                )
            result.add(group)
    return result


def _move(
    session: Session,
    where: Sequence[Any],
    *,
    state: str,
    message: str | None,
    now: datetime,
    token: str,
) -> int:
    """Move the batch's still-scheduled rows matching ``where`` to ``state``."""
    result = session.execute(
        update(Trace)
        .where(Trace.state == "scheduled", *where)
        .values(
            state=state, state_message=message, executed_at=now, claimed_by=token, lease_until=None
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def process_group(
    session: Session,
    *,
    activity_id: int,
    trace_ids: Sequence[int],
    token: str,
    now: datetime,
    check_expiry: bool = True,
    locked: bool = False,
) -> BatchResult:
    """Run one activity on its traces ``trace_ids`` (module docstring).

    ``locked``: the rows were selected for this transaction by :func:`select_due` (locked
    there), so any of them still scheduled is ours; otherwise they were stamped with
    ``token`` by :func:`claim` in an earlier transaction and only rows still holding the
    token are taken. Either way the rows that move out of ``scheduled`` get ``token``.
    """
    result = BatchResult()
    activity = session.get(Activity, activity_id)
    if activity is None:  # deleted meanwhile: its traces went with it
        return result
    campaign = session.get(Campaign, activity.campaign_id)
    assert campaign is not None
    mine: list[Any] = [id_in(session, trace_ids)]
    if not locked:
        mine.append(Trace.claimed_by == token)
    children = children_of(session, activity_id=activity.id)

    def move(where: Sequence[Any], state: str, message: str | None) -> int:
        return _move(session, where, state=state, message=message, now=now, token=token)

    # 1. expiry, counted from the planned time
    if check_expiry and activity.expiry_number is not None:
        cutoff = subtract_interval(now, activity.expiry_number, activity.expiry_unit)
        result.canceled += move(
            [*mine, or_(Trace.schedule_date.is_(None), Trace.schedule_date < cutoff)],
            "canceled",
            MSG_EXPIRED,
        )

    # 2. "not" triggers whose event (or a bounce) already happened on the parent message
    if activity.trigger_type in NOT_TRIGGERS:
        parent = aliased(Trace)
        stat = getattr(parent, TRIGGER_STAT[activity.trigger_type].key)
        for column, message in (
            (stat, NOT_CANCEL_MESSAGE[activity.trigger_type]),
            (parent.bounced_at, "Parent activity mail bounced"),
        ):
            happened = exists().where(parent.id == Trace.parent_id, column.is_not(None))
            result.canceled += move([*mine, happened], "canceled", message)

    # 3. applied filter: the batch's rows whose record no longer matches the applied filter
    # (or is gone) are rejected, then one UPDATE takes the rest (state checked in the same
    # statement, so only rows it moved are executed). Each row is written once.
    orm = REGISTRY.target(campaign.model).orm
    condition = audience.compile_domain(
        campaign.model, applied_domain(session, activity=activity), now=now
    )
    active = audience.active_condition(campaign.model, include_archived=campaign.include_archived)
    matching = exists().where(orm.id == Trace.res_id, condition, active)
    taken = session.execute(
        update(Trace)
        .where(Trace.state == "scheduled", *mine)
        .values(
            state=case((matching, "processed"), else_="rejected"),
            state_message=None,
            executed_at=now,
            claimed_by=token,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    moved = int(getattr(taken, "rowcount", 0) or 0)
    # Only the rejected ids come back (usually none; no RETURNING of the whole batch);
    # the reason goes on them alone, so the filter is evaluated once per row.
    rejected_ids: list[int] = []
    if moved:
        rejected_ids = list(
            session.connection().execute(
                select(Trace.id).where(*mine, Trace.state == "rejected", Trace.claimed_by == token)
            ).scalars()
        )
    for part in chunks(rejected_ids):
        session.execute(
            update(Trace)
            .where(Trace.id.in_(part))
            .values(state_message=MSG_REJECTED)
            .execution_options(synchronize_session=False)
        )
    rejected = len(rejected_ids)
    processed = moved - rejected
    result.rejected += rejected
    if processed:
        batch_filter = and_(*mine, Trace.state == "processed", Trace.claimed_by == token)
        outcomes = _execute(
            session, campaign=campaign, activity=activity, trace_filter=batch_filter, now=now
        )
        failed: dict[tuple[str, str], list[int]] = defaultdict(list)
        for trace_id, outcome in outcomes.items():
            if outcome.state != "processed":
                failed[(outcome.state, outcome.message)].append(trace_id)
        for (state, message), ids in failed.items():
            moved = 0
            for part in chunks(ids):
                res = session.execute(
                    update(Trace)
                    .where(Trace.id.in_(part), batch_filter)
                    .values(state=state, state_message=message)
                    .execution_options(synchronize_session=False)
                )
                moved += int(getattr(res, "rowcount", 0) or 0)
            processed -= moved
            if state == "error":
                result.error += moved
            else:
                result.canceled += moved
        result.processed += processed
        # 4. children of the processed traces
        create_children(session, children=children, parent_filter=batch_filter, now=now)
    # Completion: a processed trace of an activity with children left its participant a
    # new scheduled trace, so only the participants of the other traces need the check.
    if children:
        if result.rejected + result.canceled + result.error == 0:
            return result
        candidates = select(Trace.participant_id).where(*mine, Trace.state != "processed")
    else:
        candidates = select(Trace.participant_id).where(*mine)
    complete_participants(
        session, now=now, participant_filter=Participant.id.in_(candidates.scalar_subquery())
    )
    return result


def _execute(
    session: Session,
    *,
    campaign: Campaign,
    activity: Activity,
    trace_filter: Any,
    now: datetime,
) -> dict[int, Outcome]:
    batch = ExecutionBatch(
        session=session, campaign=campaign, activity=activity, trace_filter=trace_filter, now=now
    )
    executor = get_executor(activity.activity_type)
    if executor is None:
        message = f"No executor for {activity.activity_type} activities"
        return {t.id: Outcome("error", message) for t in batch.traces}
    try:
        with session.begin_nested():
            outcomes = dict(executor(batch))
    except OperationalError:
        raise  # transient database trouble: the whole batch is retried, not failed
    except Exception as exc:  # the executor's writes were rolled back with the savepoint
        log.warning("executor for activity %s failed: %s", activity.id, exc)
        kind = "server action" if activity.activity_type == "action" else activity.activity_type
        message = f"Exception in {kind}: {exc}"
        batch = ExecutionBatch(
            session=session, campaign=campaign, activity=activity, trace_filter=trace_filter, now=now
        )
        return {t.id: Outcome("error", message) for t in batch.traces}
    return outcomes
