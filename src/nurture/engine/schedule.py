"""Child traces, completion, event-window expiry and the *Update* operation (SPEC §3, §5.3, §5.5)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, false, insert, literal, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from nurture.campaigns.models import EVENT_TRIGGERS, Activity, Campaign
from nurture.campaigns.timing import add_interval, subtract_interval
from nurture.engine.models import Participant, Trace

MSG_EXPIRED = "expired"
MSG_NO_EVENT = "no event"
MSG_REJECTED = "Rejected by activity filter or record deleted / archived"
MSG_RECORD_DELETED = "Record deleted"

#: the statistics column an event trigger (or its "not" opposite) looks at on the parent trace
TRIGGER_STAT: dict[str, InstrumentedAttribute[datetime | None]] = {
    "mail_open": Trace.opened_at,
    "mail_not_open": Trace.opened_at,
    "mail_click": Trace.clicked_at,
    "mail_not_click": Trace.clicked_at,
    "mail_reply": Trace.replied_at,
    "mail_not_reply": Trace.replied_at,
    "mail_bounce": Trace.bounced_at,
    "sms_click": Trace.clicked_at,
    "sms_not_click": Trace.clicked_at,
    "sms_bounce": Trace.bounced_at,
}
NOT_CANCEL_MESSAGE = {
    "mail_not_open": "Parent activity mail opened",
    "mail_not_click": "Parent activity mail clicked",
    "mail_not_reply": "Parent activity mail replied",
    "sms_not_click": "Parent activity SMS clicked",
}
CHUNK = 1000


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def child_date(activity: Activity, executed_at: datetime) -> datetime | None:
    """Schedule date of a new child trace: event triggers wait undated (SPEC §5.3)."""
    if activity.trigger_type in EVENT_TRIGGERS:
        return None
    return add_interval(executed_at, activity.interval_number, activity.interval_unit)


def create_children(
    session: Session, *, children: Sequence[Activity], parent_filter: Any, now: datetime
) -> None:
    """One ``INSERT … SELECT`` per child activity for the parent traces ``parent_filter`` selects."""
    for child in children:
        source = select(
            Trace.campaign_id,
            Trace.id,
            Trace.participant_id,
            literal(child.id),
            Trace.res_id,
            Trace.is_test,
            literal("scheduled"),
            literal(child_date(child, now), Trace.schedule_date.type),
            literal(now, Trace.created_at.type),
        ).where(parent_filter)
        session.execute(
            insert(Trace).from_select(
                [
                    "campaign_id",
                    "parent_id",
                    "participant_id",
                    "activity_id",
                    "res_id",
                    "is_test",
                    "state",
                    "schedule_date",
                    "created_at",
                ],
                source,
            )
        )


def complete_participants(
    session: Session,
    *,
    now: datetime,
    participant_ids: Sequence[int] | None = None,
    campaign_id: int | None = None,
    participant_filter: Any = None,
) -> None:
    """Running participants with no scheduled trace left become ``completed`` (SPEC §5.5)."""
    nothing_left = ~exists().where(
        Trace.participant_id == Participant.id, Trace.state == "scheduled"
    )
    base = (
        update(Participant)
        .where(Participant.state == "running", nothing_left)
        .values(state="completed", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if campaign_id is not None:
        base = base.where(Participant.campaign_id == campaign_id)
    if participant_filter is not None:
        base = base.where(participant_filter)
    if participant_ids is None:
        session.execute(base)
        return
    unique = sorted(set(participant_ids))
    for part in chunks(unique):
        session.execute(base.where(Participant.id.in_(part)))


def cancel_scheduled(
    session: Session, *, trace_filter: Any, message: str, now: datetime
) -> int:
    result = session.execute(
        update(Trace)
        .where(Trace.state == "scheduled", trace_filter)
        .values(
            state="canceled",
            state_message=message,
            executed_at=now,
            claimed_by=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def expire_waiting(session: Session, *, now: datetime) -> int:
    """Event-waiting traces past the activity's expiry or the campaign's event window give up.

    They become ``canceled`` "no event", so their participants can complete (SPEC §5.5).
    """
    rows = session.execute(
        select(Activity, Campaign)
        .join(Campaign, Campaign.id == Activity.campaign_id)
        .where(Campaign.state == "running", Activity.trigger_type.in_(sorted(EVENT_TRIGGERS)))
    ).all()
    total = 0
    touched: set[int] = set()
    for activity, campaign in rows:
        if activity.expiry_number is not None:
            cutoff = subtract_interval(now, activity.expiry_number, activity.expiry_unit)
        else:
            cutoff = now - timedelta(days=campaign.event_window_days)
        count = cancel_scheduled(
            session,
            trace_filter=and_(
                Trace.activity_id == activity.id,
                Trace.schedule_date.is_(None),
                Trace.created_at < cutoff,
            ),
            message=MSG_NO_EVENT,
            now=now,
        )
        if count:
            total += count
            touched.add(campaign.id)
    for campaign_id in touched:
        complete_participants(session, now=now, campaign_id=campaign_id)
    return total


# --------------------------------------------------------------------------- Update (SPEC §3)


def _tree_order(activities: list[Activity]) -> list[Activity]:
    ids = {a.id for a in activities}
    done: set[int] = set()
    ordered: list[Activity] = []
    pending = list(activities)
    while pending:
        rest = []
        for activity in pending:
            if activity.parent_id is None or activity.parent_id not in ids or activity.parent_id in done:
                ordered.append(activity)
                done.add(activity.id)
            else:
                rest.append(activity)
        if len(rest) == len(pending):
            ordered.extend(rest)
            break
        pending = rest
    return ordered


def apply_workflow_changes(session: Session, *, campaign: Campaign, now: datetime) -> None:
    """Create traces of activities added since start and re-date changed intervals."""
    activities = _tree_order(list(campaign.activities))
    by_id = {a.id: a for a in activities}
    for activity in activities:
        if activity.pending_redate and not activity.pending_new:
            _redate(session, activity=activity)
    # Children first: the participants they re-open are running again, so they get the
    # new roots as well.
    for activity in activities:
        if activity.pending_new and activity.trigger_type != "begin" and activity.parent_id in by_id:
            _add_child_traces(session, activity=activity, now=now)
    for activity in activities:
        if activity.pending_new and activity.trigger_type == "begin":
            _add_root_traces(session, campaign=campaign, activity=activity, now=now)
    for activity in activities:
        activity.pending_new = False
        activity.pending_redate = False
    session.flush()


def _redate(session: Session, *, activity: Activity) -> None:
    """Re-date the still-scheduled dated traces of an activity whose interval changed.

    Set-based: the base times (enrolment for roots, the parent's execution for time-based
    children) take few distinct values — one per enrolment pass or executed batch — so
    there is one UPDATE per distinct base time. Children already dated by an event are
    re-dated from the event time, row by row (there are as many as events, not records).
    """
    trigger = activity.trigger_type
    number, unit = activity.interval_number, activity.interval_unit
    mine = [
        Trace.activity_id == activity.id,
        Trace.state == "scheduled",
        Trace.schedule_date.is_not(None),
    ]
    parent = aliased(Trace)
    if trigger in EVENT_TRIGGERS:
        stat = getattr(parent, TRIGGER_STAT[trigger].key)
        rows = session.execute(
            select(Trace.id, stat).join(parent, parent.id == Trace.parent_id).where(*mine)
        ).all()
        updates = [
            {"id": trace_id, "schedule_date": add_interval(base, number, unit)}
            for trace_id, base in rows
            if base is not None
        ]
        for part in chunks(updates):
            session.execute(update(Trace), list(part))
        return
    link: Any
    distinct: Any
    if trigger == "begin":
        base_col: Any = Participant.created_at
        owner = select(Participant.id).where(
            Participant.campaign_id == activity.campaign_id
        )
        link = Trace.participant_id
        distinct = select(Participant.created_at).join(
            Trace, Trace.participant_id == Participant.id
        ).where(*mine)
    else:
        base_col = Trace.executed_at
        owner = select(Trace.id).where(Trace.activity_id == activity.parent_id)
        link = Trace.parent_id
        distinct = select(parent.executed_at).join(Trace, Trace.parent_id == parent.id).where(*mine)
    for (base,) in session.execute(distinct.distinct()).all():
        if base is None:
            continue
        session.execute(
            update(Trace)
            .where(*mine, link.in_(owner.where(base_col == base)))
            .values(schedule_date=add_interval(base, number, unit))
            .execution_options(synchronize_session=False)
        )


def _add_root_traces(
    session: Session, *, campaign: Campaign, activity: Activity, now: datetime
) -> None:
    """A new root activity: a trace at now + interval for each running participant (SPEC §3)."""
    has_one = exists().where(Trace.participant_id == Participant.id, Trace.activity_id == activity.id)
    source = select(
        Participant.campaign_id,
        Participant.id,
        literal(activity.id),
        Participant.res_id,
        Participant.is_test,
        literal("scheduled"),
        literal(
            add_interval(now, activity.interval_number, activity.interval_unit),
            Trace.schedule_date.type,
        ),
        literal(now, Trace.created_at.type),
    ).where(
        Participant.campaign_id == campaign.id,
        Participant.state == "running",
        Participant.is_test == false(),
        ~has_one,
    )
    session.execute(
        insert(Trace).from_select(
            [
                "campaign_id",
                "participant_id",
                "activity_id",
                "res_id",
                "is_test",
                "state",
                "schedule_date",
                "created_at",
            ],
            source,
        )
    )


def _add_child_traces(session: Session, *, activity: Activity, now: datetime) -> None:
    """A new child of processed parents: its traces, re-opening completed participants.

    Time-based triggers: one ``INSERT … SELECT`` per distinct parent execution time
    (parent executed_at + interval); a "not" child is skipped where its event already
    happened. Event triggers: undated where the event has not happened, else dated from
    the event (row by row: as many as events).
    """
    trigger = activity.trigger_type
    number, unit = activity.interval_number, activity.interval_unit
    existing = aliased(Trace)
    has_child = exists().where(existing.parent_id == Trace.id, existing.activity_id == activity.id)
    eligible: list[Any] = [
        Trace.activity_id == activity.parent_id,
        Trace.state == "processed",
        Trace.is_test == false(),
        Trace.participant_id.in_(
            select(Participant.id).where(
                Participant.campaign_id == activity.campaign_id,
                Participant.state.in_(("running", "completed")),
            )
        ),
        ~has_child,
    ]
    stat = TRIGGER_STAT.get(trigger)

    def insert_from(where: list[Any], date: datetime | None) -> None:
        source = select(
            Trace.campaign_id,
            Trace.id,
            Trace.participant_id,
            literal(activity.id),
            Trace.res_id,
            Trace.is_test,
            literal("scheduled"),
            literal(date, Trace.schedule_date.type),
            literal(now, Trace.created_at.type),
        ).where(*where)
        session.execute(
            insert(Trace).from_select(
                [
                    "campaign_id",
                    "parent_id",
                    "participant_id",
                    "activity_id",
                    "res_id",
                    "is_test",
                    "state",
                    "schedule_date",
                    "created_at",
                ],
                source,
            )
        )

    if trigger in EVENT_TRIGGERS:
        assert stat is not None
        insert_from([*eligible, stat.is_(None)], None)
        rows = session.execute(
            select(
                Trace.campaign_id, Trace.id, Trace.participant_id, Trace.res_id, Trace.is_test, stat
            ).where(*eligible, stat.is_not(None))
        ).all()
        values = [
            {
                "campaign_id": r[0],
                "parent_id": r[1],
                "participant_id": r[2],
                "activity_id": activity.id,
                "res_id": r[3],
                "is_test": r[4],
                "state": "scheduled",
                "schedule_date": add_interval(r[5], number, unit),
                "created_at": now,
            }
            for r in rows
        ]
        for part in chunks(values):
            session.execute(insert(Trace), list(part))
    else:
        if stat is not None:  # a "not" trigger: skip parents whose event already happened
            eligible += [stat.is_(None), Trace.bounced_at.is_(None)]
        times = session.execute(select(Trace.executed_at).where(*eligible).distinct()).scalars()
        for executed_at in list(times):
            base = executed_at or now
            where = [*eligible, Trace.executed_at.is_(None) if executed_at is None else Trace.executed_at == executed_at]
            insert_from(where, add_interval(base, number, unit))
    session.execute(
        update(Participant)
        .where(
            Participant.state == "completed",
            Participant.id.in_(
                select(Trace.participant_id).where(
                    Trace.activity_id == activity.id, Trace.state == "scheduled"
                )
            ),
        )
        .values(state="running", updated_at=now)
        .execution_options(synchronize_session=False)
    )
