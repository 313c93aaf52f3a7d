"""A participant's journey as the UI shows it: every trace with its activity and the
message it sent (email or SMS), in one query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity
from nurture.channels.email.models import MailMessage
from nurture.channels.sms.models import SmsMessage
from nurture.engine.models import Trace


@dataclass(frozen=True)
class TimelineStep:
    trace_id: int
    parent_id: int | None
    activity_id: int
    activity_name: str
    activity_type: str
    trigger_type: str
    state: str
    schedule_date: datetime | None
    executed_at: datetime | None
    state_message: str | None
    sent_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    replied_at: datetime | None
    bounced_at: datetime | None
    failure_reason: str | None
    created_at: datetime
    email_message_id: int | None
    sms_message_id: int | None

    @property
    def has_message(self) -> bool:
        return self.email_message_id is not None or self.sms_message_id is not None


def timeline(session: Session, *, participant_id: int) -> list[TimelineStep]:
    """Every trace of a participant with its activity and message, in the order they were
    created (parents before children), in one query."""
    stmt = (
        select(
            Trace,
            Activity.name,
            Activity.activity_type,
            Activity.trigger_type,
            MailMessage.id,
            SmsMessage.id,
        )
        .join(Activity, Activity.id == Trace.activity_id)
        .outerjoin(MailMessage, MailMessage.trace_id == Trace.id)
        .outerjoin(SmsMessage, SmsMessage.trace_id == Trace.id)
        .where(Trace.participant_id == participant_id)
        .order_by(Trace.id)
    )
    copied = [f for f in TimelineStep.__dataclass_fields__ if hasattr(Trace, f) and f != "id"]
    steps = []
    for t, name, activity_type, trigger, mail_id, sms_id in session.execute(stmt):
        steps.append(
            TimelineStep(
                trace_id=t.id,
                activity_name=name,
                activity_type=activity_type,
                trigger_type=trigger,
                email_message_id=mail_id,
                sms_message_id=sms_id,
                **{f: getattr(t, f) for f in copied},
            )
        )
    return steps


def message_of_trace(session: Session, *, trace_id: int) -> MailMessage | SmsMessage | None:
    """The email or SMS composed for a trace (the message as sent), if any."""
    mail = session.scalar(select(MailMessage).where(MailMessage.trace_id == trace_id))
    if mail is not None:
        return mail
    return session.scalar(select(SmsMessage).where(SmsMessage.trace_id == trace_id))
