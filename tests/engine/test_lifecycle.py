"""Campaign lifecycle: stop/restart, Update, expiry, event window, test mode, CLI tick."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from nurture.campaigns import campaigns as cs
from nurture.db import Database
from nurture.engine import campaign_changes, testmode
from nurture.engine.events import record_event
from nurture.errors import Conflict, ValidationError
from nurture.worker.loop import tick

from .conftest import FakeChannel
from .helpers import T0, add, add_contacts, make_campaign, participants, states, tag_action, traces

H = timedelta(hours=1)
D = timedelta(days=1)


def _start(db: Database, cid: int, now=T0) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        cs.start_campaign(session=s, now=now, campaign_id=cid)


def test_stop_keeps_traces_and_restart_runs_overdue_ones(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}, {"email": "b@x.io"}])
        cid = make_campaign(s)
        act = add(s, cid, "One", server_action_id=tag_action(s), interval_number=1, interval_unit="days")
    _start(db, cid)
    tick(db, now=T0)
    with db.transaction() as s:
        cs.stop_campaign(session=s, now=T0 + H, campaign_id=cid)
        add_contacts(s, [{"email": "c@x.io"}], notify=True)
    tick(db, now=T0 + 3 * D)
    assert states(db, act) == ["scheduled", "scheduled"]  # stopped: no run, no enrolment
    assert len(participants(db, cid)) == 2
    _start(db, cid, T0 + 4 * D)
    tick(db, now=T0 + 4 * D)
    assert states(db, act)[:2] == ["processed", "processed"]
    assert len(participants(db, cid)) == 3  # enrolled on restart


def test_restart_respects_expiry(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        act = add(s, cid, "One", server_action_id=tag_action(s), interval_number=1,
                  interval_unit="days", expiry_number=2, expiry_unit="days")
    _start(db, cid)
    tick(db, now=T0)
    with db.transaction() as s:
        cs.stop_campaign(session=s, now=T0 + H, campaign_id=cid)
    _start(db, cid, T0 + 3 * D + H)
    tick(db, now=T0 + 3 * D + H)
    (t,) = traces(db, activity_id=act)
    assert (t.state, t.state_message) == ("canceled", "expired")
    assert participants(db, cid)[0].state == "completed"


def test_expiry_boundary(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        act = add(s, cid, "One", server_action_id=tag_action(s), interval_number=0,
                  expiry_number=2, expiry_unit="hours")
    _start(db, cid)
    tick(db, now=T0 - H)  # enrolled an hour "before": due at T0 - 1h
    tick(db, now=T0 + H)  # exactly at the limit: still runs
    assert states(db, act) == ["processed"]


def test_update_adds_root_and_child_traces(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}, {"email": "b@x.io"}])
        cid = make_campaign(s)
        first = add(s, cid, "First", server_action_id=tag_action(s))
    _start(db, cid)
    tick(db, now=T0)
    assert {p.state for p in participants(db, cid)} == {"completed"}
    with db.transaction() as s:
        root = add(s, cid, "New root", server_action_id=tag_action(s, "R"), now=T0 + D,
                   interval_number=2, interval_unit="hours")
        child = add(s, cid, "New child", server_action_id=tag_action(s, "C"), now=T0 + D,
                    trigger_type="activity", parent_id=first, interval_number=1, interval_unit="days")
        assert cs.get_campaign(session=s, campaign_id=cid).workflow_modified
    assert traces(db, activity_id=root) == [] and traces(db, activity_id=child) == []
    with db.transaction() as s:
        campaign_changes.update_campaign(session=s, now=T0 + D, campaign_id=cid)
        assert not cs.get_campaign(session=s, campaign_id=cid).workflow_modified
    # the child re-opened the completed participants; the root is for running participants
    child_traces = traces(db, activity_id=child)
    assert [t.schedule_date for t in child_traces] == [T0 + D, T0 + D]
    assert {p.state for p in participants(db, cid)} == {"running"}
    with db.transaction() as s:
        campaign_changes.update_campaign(session=s, now=T0 + D, campaign_id=cid)  # idempotent
    assert len(traces(db, activity_id=child)) == 2
    tick(db, now=T0 + D)
    assert states(db, child) == ["processed", "processed"]
    # the new root: running participants at update time got it at now + interval
    assert [t.schedule_date for t in traces(db, activity_id=root)] == [T0 + D + 2 * H] * 2
    tick(db, now=T0 + D + 2 * H)
    assert states(db, root) == ["processed", "processed"]
    assert {p.state for p in participants(db, cid)} == {"completed"}


def test_update_redates_scheduled_traces_after_interval_change(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        act = add(s, cid, "One", server_action_id=tag_action(s), interval_number=3, interval_unit="days")
    _start(db, cid)
    tick(db, now=T0)
    with db.transaction() as s:
        campaign_changes.edit_activity(session=s, now=T0 + H, activity_id=act, interval_number=1, interval_unit="weeks")
        assert cs.get_campaign(session=s, campaign_id=cid).workflow_modified
        campaign_changes.update_campaign(session=s, now=T0 + H, campaign_id=cid)
    (t,) = traces(db, activity_id=act)
    assert t.schedule_date == T0 + timedelta(weeks=1)


def test_event_window_cancels_waiting_traces(db: Database, channel: FakeChannel) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s, event_window_days=10)
        mail = add(s, cid, "Mail", activity_type="email")
        click = add(s, cid, "Clicked", server_action_id=tag_action(s), trigger_type="mail_click", parent_id=mail)
        opened = add(s, cid, "Opened", server_action_id=tag_action(s), trigger_type="mail_open",
                     parent_id=mail, expiry_number=2, expiry_unit="days")
    _start(db, cid)
    tick(db, now=T0)
    tick(db, now=T0 + 2 * D + H)  # the activity's own expiry is shorter than the window
    (o,) = traces(db, activity_id=opened)
    assert (o.state, o.state_message) == ("canceled", "no event")
    assert states(db, click) == ["scheduled"]
    assert participants(db, cid)[0].state == "running"
    tick(db, now=T0 + 10 * D + H)
    (c,) = traces(db, activity_id=click)
    assert (c.state, c.state_message) == ("canceled", "no event")
    assert participants(db, cid)[0].state == "completed"
    # a late click changes nothing
    (mt,) = traces(db, activity_id=mail)
    with db.transaction() as s:
        assert record_event(s, trace_id=mt.id, event="click", now=T0 + 11 * D) == 0
    assert states(db, click) == ["canceled"]


def test_test_mode_runs_steps_by_hand(db: Database, channel: FakeChannel) -> None:
    with db.transaction() as s:
        (rid,) = add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        mail = add(s, cid, "Mail", activity_type="email", interval_number=1, interval_unit="days")
        clicked = add(s, cid, "Clicked", server_action_id=tag_action(s), trigger_type="mail_click",
                      parent_id=mail, interval_number=3, interval_unit="hours")
        part = testmode.launch_test(s, campaign_id=cid, res_id=rid, now=T0)
        pid = part.id
        assert part.is_test and part.state == "running"
    (step,) = traces(db, activity_id=mail)
    assert step.is_test and step.schedule_date == T0 + D
    tick(db, now=T0 + 2 * D)  # workers never run test steps; draft campaigns do not enrol
    assert states(db, mail) == ["scheduled"]
    assert [p.is_test for p in participants(db, cid)] == [True]
    with db.transaction() as s:
        testmode.run_step(s, trace_id=step.id, now=T0 + H)
    assert states(db, mail) == ["processed"]
    assert channel.sent == [step.id]
    (child,) = traces(db, activity_id=clicked)
    assert child.schedule_date is None
    with db.transaction() as s, pytest.raises(Conflict):
        testmode.run_step(s, trace_id=step.id, now=T0 + H)
    with db.transaction() as s:
        testmode.simulate_event(s, trace_id=step.id, event="click", now=T0 + 2 * H)
    (child,) = traces(db, activity_id=clicked)
    assert child.schedule_date == T0 + 5 * H
    with db.transaction() as s:
        testmode.run_step(s, trace_id=child.id, now=T0 + 2 * H)
    assert states(db, clicked) == ["processed"]
    assert participants(db, cid)[0].state == "completed"
    with db.transaction() as s:
        assert testmode.stop_test(s, participant_id=pid, now=T0 + 3 * H).state == "completed"


def test_stop_test_cancels_its_steps(db: Database, channel: FakeChannel) -> None:
    with db.transaction() as s:
        (rid,) = add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        mail = add(s, cid, "Mail", activity_type="email", interval_number=1, interval_unit="days")
        pid = testmode.launch_test(s, campaign_id=cid, res_id=rid, now=T0).id
        testmode.stop_test(s, participant_id=pid, now=T0 + H)
    (t,) = traces(db, activity_id=mail)
    assert (t.state, t.state_message) == ("canceled", "Test stopped")
    with db.transaction() as s, pytest.raises(ValidationError):
        testmode.launch_test(s, campaign_id=cid, res_id=rid + 999, now=T0)


def test_tick_command_drives_a_campaign(
    db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from nurture.cli import cli

    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        act = add(s, cid, "One", server_action_id=tag_action(s), interval_number=2, interval_unit="weeks")
    _start(db, cid)
    monkeypatch.setenv("NURTURE_DATABASE_URL", db.url)
    monkeypatch.setenv("NURTURE_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    out = runner.invoke(cli, ["tick", "--now", T0.isoformat()])
    assert out.exit_code == 0, out.output
    assert "enrolled 0" in out.output  # enrolled when it started
    assert states(db, act) == ["scheduled"]
    out = runner.invoke(cli, ["tick", "--now", (T0 + timedelta(weeks=2)).isoformat() + "+00:00"])
    assert out.exit_code == 0, out.output
    assert "processed 1" in out.output
    assert states(db, act) == ["processed"]
    bad = runner.invoke(cli, ["tick", "--now", "yesterday"])
    assert bad.exit_code != 0


def test_update_adds_event_and_not_children_from_what_already_happened(
    db: Database, channel: FakeChannel
) -> None:
    with db.transaction() as s:
        a, b = add_contacts(s, [{"email": "a@x.io"}, {"email": "b@x.io"}])
        cid = make_campaign(s)
        mail = add(s, cid, "Mail", activity_type="email")
    _start(db, cid)
    tick(db, now=T0)
    by_res = {t.res_id: t.id for t in traces(db, activity_id=mail)}
    with db.transaction() as s:
        record_event(s, trace_id=by_res[a], event="click", now=T0 + H)
    with db.transaction() as s:
        clicked = add(s, cid, "Clicked", server_action_id=tag_action(s), now=T0 + D,
                      trigger_type="mail_click", parent_id=mail, interval_number=2, interval_unit="hours")
        not_opened = add(s, cid, "Not opened", server_action_id=tag_action(s), now=T0 + D,
                         trigger_type="mail_not_open", parent_id=mail, interval_number=3, interval_unit="days")
        campaign_changes.update_campaign(session=s, now=T0 + D, campaign_id=cid)
    got = {t.res_id: t.schedule_date for t in traces(db, activity_id=clicked)}
    assert got == {a: T0 + 3 * H, b: None}  # a clicked already: dated from the click
    got = {t.res_id: t.schedule_date for t in traces(db, activity_id=not_opened)}
    assert got == {b: T0 + 3 * D}  # a opened (clicked): its "not opened" branch never runs
    assert {p.state for p in participants(db, cid)} == {"running"}
    tick(db, now=T0 + 3 * D)
    assert sorted(states(db, clicked)) == ["processed", "scheduled"]
    assert states(db, not_opened) == ["processed"]
