"""A campaign with history made by the engine itself under simulated time (enrol, execute,
record events), shared by the reporting and UI tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.channels.email import service as email_service
from nurture.db import Database
from nurture.engine.events import record_event
from nurture.engine.models import Trace
from nurture.engine.testmode import launch_test, run_step
from nurture.records.models import Contact
from nurture.worker.loop import tick

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class History:
    campaign_id: int
    welcome: int  # email root
    opened: int  # action child: mail_open
    reminder: int  # email child: mail_not_open after 2 days
    paris: int  # action child of the reminder: only Paris contacts (others rejected)
    contact_ids: list[int]
    start: datetime


def make_history(db: Database, *, start: datetime, contacts: int = 6) -> History:
    """Contacts c0…c5 (c0 and c4 in Paris). Welcome email at ``start``; c0 opens, c1 opens
    and clicks, c2 replies, c3 bounces; c4 and c5 get the reminder 2 days later, whose
    "Paris only" child runs for c4 and rejects c5. A test participant runs the welcome
    email too and clicks (its figures must not count)."""
    with db.transaction() as s:
        ids = []
        for i in range(contacts):
            c = Contact(
                name=f"Contact {i}", email=f"c{i}@example.org", city="Paris" if i % 4 == 0 else "Lyon",
                active=True, created_at=start, updated_at=start,
            )
            s.add(c)
            s.flush()
            ids.append(c.id)
        cid = cs.create_campaign(session=s, now=start, name="Welcome flow", model="contact").id
        welcome = activity_service.add_activity(
            session=s, now=start, campaign_id=cid, name="Welcome email", activity_type="email"
        ).id
        email_service.create_template(
            session=s, now=start, activity_id=welcome, subject="Welcome {{ record.name }}",
            body_html='<p>Hello {{ record.name }}</p><p><a href="https://shop.example.com/">Shop</a></p>',
        )
        tag = action_service.create_server_action(session=s, now=start, name="Tag engaged", model="contact", add_tags=["Engaged"])
        opened = activity_service.add_activity(
            session=s, now=start, campaign_id=cid, name="Tag openers", activity_type="action",
            server_action_id=tag.id, trigger_type="mail_open", parent_id=welcome,
            interval_number=2, interval_unit="hours",
        ).id
        reminder = activity_service.add_activity(
            session=s, now=start, campaign_id=cid, name="Reminder", activity_type="email",
            trigger_type="mail_not_open", parent_id=welcome, interval_number=2, interval_unit="days",
        ).id
        email_service.create_template(
            session=s, now=start, activity_id=reminder, subject="Did you see this, {{ record.name }}?",
            body_html="<p>Reminder</p>",
        )
        paris = activity_service.add_activity(
            session=s, now=start, campaign_id=cid, name="Paris only", activity_type="action",
            server_action_id=tag.id, trigger_type="activity", parent_id=reminder,
            interval_number=1, interval_unit="hours", domain=[["city", "=", "Paris"]],
        ).id
        cs.start_campaign(session=s, now=start, campaign_id=cid)
    tick(db, now=start)
    with db.read() as s:
        traces = {t.res_id: t.id for t in s.scalars(select(Trace).where(Trace.activity_id == welcome))}
    events = [(ids[0], "open"), (ids[1], "open"), (ids[1], "click"), (ids[2], "reply"), (ids[3], "bounce")]
    with db.transaction() as s:
        for res_id, event in events:
            record_event(s, trace_id=traces[res_id], event=event, now=start + HOUR)
    tick(db, now=start + 3 * HOUR)
    tick(db, now=start + 2 * DAY + HOUR)
    tick(db, now=start + 2 * DAY + 3 * HOUR)
    with db.transaction() as s:
        test = launch_test(s, campaign_id=cid, res_id=ids[0], now=start)
        (trace_id,) = s.scalars(select(Trace.id).where(Trace.participant_id == test.id))
    with db.transaction() as s:
        run_step(s, trace_id=trace_id, now=start)
        record_event(s, trace_id=trace_id, event="click", now=start + HOUR)
    return History(cid, welcome, opened, reminder, paris, ids, start)
