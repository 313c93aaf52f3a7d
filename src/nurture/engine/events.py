"""Message events (SPEC §5.4): open, click, reply, bounce on an email or SMS step.

:func:`record_event` stamps the trace's statistics and, in the same transaction, dates the
children waiting for that event, cancels the opposite ``*_not_*`` children and applies the
implication rules (a click or a reply also counts as an open; a bounce cancels every child
but the bounce children). Only children still ``scheduled`` and undated are dated, and
only ``scheduled`` ones are canceled, so repeated and late events change nothing.

The work is a handful of Core statements built once (no ORM unit of work): the tracking
routes apply an event on every human open or click, inside the request, so this is a hot
path. :func:`apply_event` takes a plain connection and the trace row already read (and, on
PostgreSQL, locked) with :func:`event_trace_query`; :func:`record_event` is the session
front end the engine, delivery and inbound mail use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, bindparam, exists, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity
from nurture.campaigns.timing import add_interval
from nurture.engine.models import Participant, Trace
from nurture.engine.schedule import NOT_CANCEL_MESSAGE
from nurture.errors import NotFound, ValidationError

EMAIL_EVENTS = ("open", "click", "reply", "bounce")
SMS_EVENTS = ("sms_click", "sms_bounce")
EVENTS = EMAIL_EVENTS + SMS_EVENTS

#: event -> (statistics columns it stamps, triggers it fires)
_EFFECTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "open": (("opened_at",), ("mail_open",)),
    "click": (("opened_at", "clicked_at"), ("mail_open", "mail_click")),
    "reply": (("opened_at", "replied_at"), ("mail_open", "mail_reply")),
    "bounce": (("bounced_at",), ("mail_bounce",)),
    "sms_click": (("clicked_at",), ("sms_click",)),
    "sms_bounce": (("bounced_at",), ("sms_bounce",)),
}
_OPPOSITE = {
    "mail_open": "mail_not_open",
    "mail_click": "mail_not_click",
    "mail_reply": "mail_not_reply",
    "sms_click": "sms_not_click",
}
_BOUNCE_KEEP = frozenset({"mail_bounce", "sms_bounce"})

#: set when an event dated a child, so an in-process worker wakes up at once
wakeup = threading.Event()

DatedListener = Callable[[Connection, Sequence[int]], None]
#: ``listener(conn, child_trace_ids)`` called in the transaction that dated children (the
#: Celery engine enqueues their activities' follow-up after commit: nurture.jobs.hooks)
_dated: list[DatedListener] = []


def on_dated(listener: DatedListener) -> DatedListener:
    """Register ``listener(conn, child_ids)`` for children an event dated."""
    if listener not in _dated:
        _dated.append(listener)
    return listener

_trace: Table = Trace.__table__  # type: ignore[assignment]
_activity: Table = Activity.__table__  # type: ignore[assignment]
_participant: Table = Participant.__table__  # type: ignore[assignment]

#: the columns :func:`apply_event` needs, in this order (select them with ``*EVENT_COLUMNS``)
EVENT_COLUMNS = (
    _trace.c.id,
    _trace.c.participant_id,
    _activity.c.activity_type,
    _trace.c.opened_at,
    _trace.c.clicked_at,
    _trace.c.replied_at,
    _trace.c.bounced_at,
)
_STAT_INDEX = {"opened_at": 3, "clicked_at": 4, "replied_at": 5, "bounced_at": 6}


def event_trace_query(dialect: str, *extra: Any, where: Any = None) -> Select[Any]:
    """``SELECT`` of the trace ``:trace_id`` (or of the traces ``where`` selects, in id order)
    with its step type, locked on PostgreSQL.

    Rows start with :data:`EVENT_COLUMNS`; ``extra`` columns follow. Build it once per
    dialect and reuse it (SQLAlchemy caches the compiled form).
    """
    stmt = (
        select(*EVENT_COLUMNS, *extra)
        .select_from(_trace.join(_activity, _activity.c.id == _trace.c.activity_id))
        .where(_trace.c.id == bindparam("trace_id") if where is None else where)
        .order_by(_trace.c.id)
    )
    if dialect == "postgresql":
        # concurrent events on one message apply one after the other
        stmt = stmt.with_for_update(of=_trace)
    return stmt


def children_query(parent_filter: Any) -> Select[Any]:
    """The scheduled children of the traces ``parent_filter`` (on ``trace.parent_id``)
    selects; rows as :func:`plan_events` reads them."""
    return (
        select(
            _trace.c.parent_id,
            _trace.c.id,
            _trace.c.schedule_date,
            _activity.c.trigger_type,
            _activity.c.interval_number,
            _activity.c.interval_unit,
        )
        .select_from(_trace.join(_activity, _activity.c.id == _trace.c.activity_id))
        .where(parent_filter, _trace.c.state == "scheduled")
    )


_LOAD = {name: event_trace_query(name) for name in ("postgresql", "sqlite")}

CHILDREN_QUERY = children_query(_trace.c.parent_id.in_(bindparam("parent_ids", expanding=True)))
_STATS = ("opened_at", "clicked_at", "replied_at", "bounced_at")

#: the writes of a batch of events, in execution order, each run with a list of parameter
#: sets (:class:`EventWrites`); a first event's time wins (``COALESCE``), only scheduled and
#: undated children are dated, only scheduled ones canceled
STAMP = (
    update(_trace)
    .where(_trace.c.id == bindparam("trace_id"))
    .values({
        _trace.c[name]: func.coalesce(_trace.c[name], bindparam(name, type_=_trace.c[name].type))
        for name in _STATS
    })
)
DATE_CHILD = (
    update(_trace)
    .where(
        _trace.c.id == bindparam("child_id"),
        _trace.c.state == "scheduled",
        _trace.c.schedule_date.is_(None),
    )
    .values(schedule_date=bindparam("schedule_date"))
)
CANCEL_CHILD = (
    update(_trace)
    .where(_trace.c.id == bindparam("child_id"), _trace.c.state == "scheduled")
    .values(
        state="canceled",
        state_message=bindparam("message"),
        executed_at=bindparam("now"),
        claimed_by=None,
        lease_until=None,
    )
)
COMPLETE_PARTICIPANT = (
    update(_participant)
    .where(
        _participant.c.id == bindparam("participant_id"),
        _participant.c.state == "running",
        ~exists().where(_trace.c.participant_id == _participant.c.id, _trace.c.state == "scheduled"),
    )
    .values(state="completed", updated_at=bindparam("now"))
)
_CHUNK = 500

Item = tuple[Sequence[Any], str, datetime]


@dataclass
class EventWrites:
    """Parameter sets for :data:`STAMP`, :data:`DATE_CHILD`, :data:`CANCEL_CHILD` and
    :data:`COMPLETE_PARTICIPANT`, and the children each event dated."""

    stamps: list[dict[str, Any]] = field(default_factory=list)
    dates: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[dict[str, Any]] = field(default_factory=list)
    completions: list[dict[str, Any]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def statements(self) -> list[tuple[Any, list[dict[str, Any]]]]:
        """``(statement, parameter sets)`` to execute, in order, skipping empty ones."""
        pairs = [
            (STAMP, self.stamps),
            (DATE_CHILD, self.dates),
            (CANCEL_CHILD, self.cancels),
            (COMPLETE_PARTICIPANT, self.completions),
        ]
        return [(stmt, params) for stmt, params in pairs if params]


def _check_event(event: str) -> None:
    if event not in _EFFECTS:
        raise ValidationError(
            f"unknown event {event!r} (known: {', '.join(EVENTS)})", field="event"
        )


def check_events(items: Sequence[Item]) -> None:
    """ValidationError for an unknown event or one on the wrong kind of step."""
    for row, event, _now in items:
        _check_event(event)
        wanted = "sms" if event.startswith("sms_") else "email"
        if row[2] != wanted:
            raise ValidationError(
                f"event {event!r} applies to an {wanted} step, not to an {row[2]} step",
                field="event",
            )


def plan_events(items: Sequence[Item], children: Mapping[int, Sequence[Sequence[Any]]]) -> EventWrites:
    """The writes for ``items`` (checked, on distinct traces), given each trace's scheduled
    children (rows of :data:`CHILDREN_QUERY` by parent id, read in this transaction)."""
    writes = EventWrites()
    for row, event, now in items:
        stamped, fired = _EFFECTS[event]
        if any(row[_STAT_INDEX[c]] is None for c in stamped):
            stamp: dict[str, Any] = dict.fromkeys(_STATS)
            stamp["trace_id"] = row[0]
            for column in stamped:
                stamp[column] = now
            writes.stamps.append(stamp)
        kids = children.get(row[0], ())
        dated = 0
        for _parent, child_id, schedule_date, trigger, number, unit in kids:
            if trigger in fired and schedule_date is None:
                date = add_interval(now, number, unit)
                writes.dates.append({"child_id": child_id, "schedule_date": date})
                dated += 1
        writes.counts.append(dated)
        if event in ("bounce", "sms_bounce"):
            message = (
                "Parent activity mail bounced" if event == "bounce" else "Parent activity SMS bounced"
            )
            writes.cancels.extend(
                {"child_id": c[1], "message": message, "now": now}
                for c in kids
                if c[3] not in _BOUNCE_KEEP
            )
        else:
            for trigger in fired:
                opposite = _OPPOSITE.get(trigger)
                if opposite is not None:
                    message = NOT_CANCEL_MESSAGE[opposite]
                    writes.cancels.extend(
                        {"child_id": c[1], "message": message, "now": now}
                        for c in kids
                        if c[3] == opposite
                    )
        writes.completions.append({"participant_id": row[1], "now": now})
    return writes


def record_event(session: Session, *, trace_id: int, event: str, now: datetime) -> int:
    """Apply ``event`` to the message of trace ``trace_id``; returns the children dated."""
    _check_event(event)
    session.flush()
    conn = session.connection()
    row = conn.execute(_LOAD.get(conn.dialect.name, _LOAD["sqlite"]), {"trace_id": trace_id}).first()
    if row is None:
        raise NotFound(f"trace {trace_id} does not exist", field="trace_id")
    dated = apply_event(conn, row, event=event, now=now)
    # the statements above bypassed the session: reload whatever it holds
    session.expire_all()
    return dated


def apply_event(conn: Connection, row: Sequence[Any], *, event: str, now: datetime) -> int:
    """Apply ``event`` to the trace ``row`` (starting with :data:`EVENT_COLUMNS`, read in
    this transaction with :func:`event_trace_query`); returns the children dated."""
    return apply_events(conn, [(row, event, now)])[0]


def apply_events(conn: Connection, items: Sequence[Item]) -> list[int]:
    """:func:`apply_event` for many ``(row, event, now)`` at once, a few set-wide statements
    for the lot; the children dated by each. The result is that of applying them one after
    the other in this order."""
    check_events(items)
    # events on different traces commute; two on one trace keep their order: the items
    # run in stretches of distinct traces
    counts: list[int] = []
    run: list[Item] = []
    ids: set[int] = set()
    for item in items:
        if item[0][0] in ids:
            counts.extend(_apply_distinct(conn, run))
            run, ids = [], set()
        run.append(item)
        ids.add(item[0][0])
    counts.extend(_apply_distinct(conn, run))
    return counts


def read_children(conn: Connection, parent_ids: Sequence[int]) -> dict[int, list[Any]]:
    """The scheduled children of ``parent_ids`` by parent (rows of :data:`CHILDREN_QUERY`)."""
    children: dict[int, list[Any]] = {}
    for start in range(0, len(parent_ids), _CHUNK):
        chunk = list(parent_ids[start : start + _CHUNK])
        for child in conn.execute(CHILDREN_QUERY, {"parent_ids": chunk}):
            children.setdefault(child[0], []).append(child)
    return children


def execute_writes(conn: Connection, writes: EventWrites) -> None:
    for stmt, params in writes.statements():
        conn.execute(stmt, params)
    if writes.dates:
        wakeup.set()
        if _dated:
            child_ids = [d["child_id"] for d in writes.dates]
            for listener in list(_dated):
                listener(conn, child_ids)


def _apply_distinct(conn: Connection, items: Sequence[Item]) -> list[int]:
    if not items:
        return []
    writes = plan_events(items, read_children(conn, [row[0] for row, _e, _n in items]))
    execute_writes(conn, writes)
    return writes.counts
