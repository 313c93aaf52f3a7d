"""The update-record action end to end, and the in-process runner with the wall clock."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from nurture.actions import service as action_service
from nurture.campaigns import campaigns as cs
from nurture.clock import utcnow
from nurture.config import load_settings
from nurture.db import Database
from nurture.engine.events import record_event
from nurture.records import service as records
from nurture.records.models import Contact, Lead, Tag
from nurture.runtime import Runtime
from nurture.worker.loop import tick
from nurture.worker.runner import InProcessRunner

from .conftest import FakeChannel
from .helpers import T0, add, make_campaign, states, traces


def test_update_record_action_sets_fields_and_tags(db: Database) -> None:
    with db.transaction() as s:
        s.add(Tag(name="Cold", color=0))
        s.flush()
        cold = s.scalars(select(Tag).where(Tag.name == "Cold")).one()
        lead = Lead(name="L", email="l@x.io", created_at=T0, updated_at=T0, tags=[cold])
        s.add(lead)
        s.flush()
        lead_id = lead.id
        campaign = cs.create_campaign(session=s, now=T0, name="Prio", model="lead")
        action = action_service.create_server_action(
            session=s, now=T0, name="Hot lead", model="lead",
            values={"priority": 3, "stage": "Qualified"}, add_tags=["Hot"], remove_tags=["Cold"],
        )
        act = add(s, campaign.id, "Prioritise", server_action_id=action.id)
        cs.start_campaign(session=s, now=T0, campaign_id=campaign.id)
    tick(db, now=T0 + timedelta(minutes=1))
    assert states(db, act) == ["processed"]
    with db.read() as s:
        lead = s.get(Lead, lead_id)
        assert lead is not None
        assert (lead.priority, lead.stage, [t.name for t in lead.tags]) == (3, "Qualified", ["Hot"])
        assert lead.updated_at == T0 + timedelta(minutes=1)


def test_in_process_runner_enrols_and_follows_a_click_within_seconds(
    db: Database, channel: FakeChannel
) -> None:
    now = utcnow()
    with db.transaction() as s:
        cid = make_campaign(s, now=now)
        mail = add(s, cid, "Mail", activity_type="email", now=now)
        clicked = add(s, cid, "Clicked", trigger_type="mail_click", parent_id=mail, now=now,
                      server_action_id=action_service.create_server_action(
                          session=s, now=now, name="t", model="contact", add_tags=["Hot"]).id)
        cs.start_campaign(session=s, now=now, campaign_id=cid)
    settings = load_settings({"NURTURE_DATABASE_URL": db.url, "NURTURE_DATA_DIR": "/tmp"})
    runner = InProcessRunner(Runtime(settings=settings, db=db), poll_interval=0.05)
    runner.start()
    try:
        with db.transaction() as s:
            rid = records.create_record(session=s, model="contact",
                                        values={"name": "N", "email": "n@x.io"}, now=utcnow())
        (mt,) = _wait(lambda: [t for t in traces(db, activity_id=mail) if t.state == "processed"])
        with db.transaction() as s:
            record_event(s, trace_id=mt.id, event="click", now=utcnow())
        _wait(lambda: [t for t in traces(db, activity_id=clicked) if t.state == "processed"])
    finally:
        runner.stop()
    with db.read() as s:
        contact = s.get(Contact, rid)
        assert contact is not None and [t.name for t in contact.tags] == ["Hot"]
    assert all(t.lease_until is None for t in traces(db))


def _wait(probe, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_worker_command_runs_due_traces_and_stops_on_sigterm(db: Database, tmp_path: object) -> None:
    import os
    import signal
    import subprocess
    import sys

    now = utcnow()
    with db.transaction() as s:
        s.add(Contact(name="W", email="w@x.io", created_at=now, updated_at=now))
        cid = make_campaign(s, now=now)
        act = add(s, cid, "Tag", now=now, server_action_id=action_service.create_server_action(
            session=s, now=now, name="t", model="contact", add_tags=["Seen"]).id)
        cs.start_campaign(session=s, now=now, campaign_id=cid)
    env = {**os.environ, "NURTURE_DATABASE_URL": db.url, "NURTURE_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from nurture.cli import main; main()", "worker", "--poll", "0.05"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait(lambda: states(db, act) == ["processed"], timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopping after the current batch" in err
