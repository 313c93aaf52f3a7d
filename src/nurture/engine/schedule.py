"""Child traces, completion, event-window expiry and the *Update* operation (SPEC §3, §5.3, §5.5)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, false, insert, literal, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from nurture.campaigns.models import EVENT_TRIGGERS, NOT_TRIGGERS, Activity, Campaign
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
    """Re-date the still-scheduled dated traces of an activity whose interval changed."""
    trigger = activity.trigger_type
    parent = Trace.__table__.alias("parent_trace")
    base_col: Any
    if trigger == "begin":
        stmt = select(Trace.id, Participant.created_at).join(
            Participant, Participant.id == Trace.participant_id
        )
    else:
        if trigger in EVENT_TRIGGERS:
            base_col = parent.c[TRIGGER_STAT[trigger].key]
        else:
            base_col = parent.c.executed_at
        stmt = select(Trace.id, base_col).join(parent, parent.c.id == Trace.parent_id)
    stmt = stmt.where(
        Trace.activity_id == activity.id,
        Trace.state == "scheduled",
        Trace.schedule_date.is_not(None),
    ).order_by(Trace.id)
    rows = session.execute(stmt).all()
    updates = [
        {"id": trace_id, "schedule_date": add_interval(base, activity.interval_number, activity.interval_unit)}
        for trace_id, base in rows
        if base is not None
    ]
    for part in chunks(updates):
        session.execute(update(Trace), list(part))


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
    """A new child of processed parents: its traces, re-opening completed participants."""
    trigger = activity.trigger_type
    child = Trace.__table__.alias("existing_child")
    has_child = exists().where(child.c.parent_id == Trace.id, child.c.activity_id == activity.id)
    stat = TRIGGER_STAT.get(trigger)
    columns: list[Any] = [
        Trace.id,
        Trace.campaign_id,
        Trace.participant_id,
        Trace.res_id,
        Trace.is_test,
        Trace.executed_at,
    ]
    if stat is not None:
        columns.append(stat)
    rows = session.execute(
        select(*columns)
        .join(Participant, Participant.id == Trace.participant_id)
        .where(
            Trace.activity_id == activity.parent_id,
            Trace.state == "processed",
            Participant.state.in_(("running", "completed")),
            Participant.is_test == false(),
            ~has_child,
        )
        .order_by(Trace.id)
    ).all()
    new_rows: list[dict[str, Any]] = []
    for row in rows:
        executed_at = row.executed_at or now
        if trigger in NOT_TRIGGERS:
            if row[6] is not None:
                continue  # the event already happened: the "not" branch never runs
            date: datetime | None = add_interval(
                executed_at, activity.interval_number, activity.interval_unit
            )
        elif trigger in EVENT_TRIGGERS:
            event_at = row[6]
            date = (
                add_interval(event_at, activity.interval_number, activity.interval_unit)
                if event_at is not None
                else None
            )
        else:
            date = add_interval(executed_at, activity.interval_number, activity.interval_unit)
        new_rows.append(
            {
                "campaign_id": row.campaign_id,
                "participant_id": row.participant_id,
                "activity_id": activity.id,
                "parent_id": row.id,
                "res_id": row.res_id,
                "is_test": row.is_test,
                "state": "scheduled",
                "schedule_date": date,
                "created_at": now,
            }
        )
    for part in chunks(new_rows):
        session.execute(insert(Trace), list(part))
        session.execute(
            update(Participant)
            .where(
                Participant.id.in_({r["participant_id"] for r in part}),
                Participant.state == "completed",
            )
            .values(state="running", updated_at=now)
            .execution_options(synchronize_session=False)
        )
