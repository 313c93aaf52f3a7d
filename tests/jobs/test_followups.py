"""Record changes and message events send their follow-up task at once (no scheduler
running here: nothing else could find the work), from a process other than the worker."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.clock import utcnow
from nurture.db import Database
from nurture.engine.models import Trace
from tests.jobs.cluster import Cluster, run_in_process, smtp_server, wait_until

CREATE_CONTACT = """
from nurture.clock import utcnow
from nurture.records.service import create_record
from nurture.runtime import open_runtime
rt = open_runtime()
with rt.db.transaction() as s:
        create_record(session=s, model="contact", values={"name": "Ann", "email": "ann@example.com"}, now=utcnow())
"""

RECORD_OPEN = """
from nurture.clock import utcnow
from nurture.engine.events import record_event
from nurture.runtime import open_runtime
rt = open_runtime()
with rt.db.transaction() as s:
    print(record_event(s, trace_id={trace_id}, event="open", now=utcnow()))
"""


def _state(db: Database, activity_id: int) -> str | None:
    with db.read() as s:
        return s.scalar(select(Trace.state).where(Trace.activity_id == activity_id))


def test_record_change_and_open_event_run_their_steps_at_once(pg: Database, tmp_path: Path) -> None:
    now = utcnow()
    with pg.transaction() as s:
        campaign = cs.create_campaign(session=s, now=now, name="Follow-ups", model="contact")
        mail = activity_service.add_activity(session=s, now=now, campaign_id=campaign.id, name="Hi", activity_type="email")
        from nurture.channels.email import service as email_service

        email_service.create_template(session=s, now=now, activity_id=mail.id, subject="Hi", body_html="<p>Hi</p>")
        tag = action_service.create_server_action(session=s, now=now, name="tag", model="contact", add_tags=["Opened"])
        opened = activity_service.add_activity(
            session=s, now=now, campaign_id=campaign.id, name="Tag openers", activity_type="action",
            server_action_id=tag.id, trigger_type="mail_open", parent_id=mail.id,
        )
        cs.start_campaign(session=s, now=now, campaign_id=campaign.id)
        mail_id, opened_id = mail.id, opened.id
    with smtp_server() as (sink, port):
        cluster = Cluster(pg, tmp_path, port)
        try:
            cluster.worker("w1")
            time.sleep(0.5)
            # a new record → enrolled in its transaction → "run step" sent after commit
            started = time.monotonic()
            run_in_process(cluster, "web1", CREATE_CONTACT)
            wait_until(lambda: len(sink.received) == 1, 60, "the first email to be sent")
            print(f"record created → email at the SMTP server: {time.monotonic() - started:.2f}s")
            with pg.read() as s:
                trace_id = s.scalar(select(Trace.id).where(Trace.activity_id == mail_id))
            assert _state(pg, opened_id) == "scheduled"
            started = time.monotonic()
            out = run_in_process(cluster, "web2", RECORD_OPEN.format(trace_id=trace_id))
            assert out.strip() == "1"  # the open dated the waiting child
            wait_until(lambda: _state(pg, opened_id) == "processed", 60, "the open's child to run")
            with pg.read() as s:
                opened_at = s.scalar(select(Trace.opened_at).where(Trace.id == trace_id))
                executed_at = s.scalar(select(Trace.executed_at).where(Trace.activity_id == opened_id))
            assert opened_at is not None and executed_at is not None
            print(
                f"open recorded → child executed: {(executed_at - opened_at).total_seconds():.3f}s "
                f"(database clock; {time.monotonic() - started:.2f}s with the process start)"
            )
        except AssertionError:
            print(cluster.logs())
            raise
        finally:
            cluster.stop_all()
