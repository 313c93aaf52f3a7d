"""Message events (SPEC §5.4): open, click, reply, bounce on an email or SMS step.

:func:`record_event` stamps the trace's statistics and, in the same transaction, dates the
children waiting for that event, cancels the opposite ``*_not_*`` children and applies the
implication rules (a click or a reply also counts as an open; a bounce cancels every child
but the bounce children). Only children still ``scheduled`` and undated are dated, and
only ``scheduled`` ones are canceled, so repeated and late events change nothing.
"""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity
from nurture.campaigns.timing import add_interval
from nurture.engine.models import Trace
from nurture.engine.schedule import NOT_CANCEL_MESSAGE, cancel_scheduled, complete_participants
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

#: set when an event dated a child, so an in-process worker wakes up at once
wakeup = threading.Event()


def record_event(session: Session, *, trace_id: int, event: str, now: datetime) -> int:
    """Apply ``event`` to the message of trace ``trace_id``; returns the children dated."""
    if event not in _EFFECTS:
        raise ValidationError(
            f"unknown event {event!r} (known: {', '.join(EVENTS)})", field="event"
        )
    stmt = select(Trace).where(Trace.id == trace_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    trace = session.scalars(stmt).first()
    if trace is None:
        raise NotFound(f"trace {trace_id} does not exist", field="trace_id")
    activity = session.get(Activity, trace.activity_id)
    assert activity is not None
    wanted = "sms" if event.startswith("sms_") else "email"
    if activity.activity_type != wanted:
        raise ValidationError(
            f"event {event!r} applies to an {wanted} step, not to an {activity.activity_type} step",
            field="event",
        )
    stamps, fired = _EFFECTS[event]
    for column in stamps:
        if getattr(trace, column) is None:
            setattr(trace, column, now)
    session.flush()

    children = session.execute(
        select(Trace, Activity)
        .join(Activity, Activity.id == Trace.activity_id)
        .where(Trace.parent_id == trace.id, Trace.state == "scheduled")
    ).all()
    dated = 0
    for child, child_activity in children:
        if child_activity.trigger_type in fired and child.schedule_date is None:
            child.schedule_date = add_interval(
                now, child_activity.interval_number, child_activity.interval_unit
            )
            dated += 1
    if event in ("bounce", "sms_bounce"):
        keep = {"mail_bounce", "sms_bounce"}
        doomed = [c.id for c, a in children if a.trigger_type not in keep]
        message = "Parent activity mail bounced" if event == "bounce" else "Parent activity SMS bounced"
        if doomed:
            session.flush()
            cancel_scheduled(session, trace_filter=Trace.id.in_(doomed), message=message, now=now)
    else:
        for trigger in fired:
            opposite = _OPPOSITE.get(trigger)
            doomed = [c.id for c, a in children if a.trigger_type == opposite]
            if doomed:
                session.flush()
                cancel_scheduled(
                    session,
                    trace_filter=and_(Trace.id.in_(doomed)),
                    message=NOT_CANCEL_MESSAGE[opposite or ""],
                    now=now,
                )
    session.flush()
    session.expire_all()
    complete_participants(session, now=now, participant_ids=[trace.participant_id])
    if dated:
        wakeup.set()
    return dated
