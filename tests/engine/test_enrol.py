"""Enrolment: filter, unicity, archived records, removed records, continuous enrolment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, text, update

from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.campaigns import domains
from nurture.db import Database
from nurture.engine.enrol import enrol_campaign
from nurture.engine.models import Participant, Trace
from nurture.engine.testmode import launch_test
from nurture.records import service as records
from nurture.records.models import Contact
from nurture.worker.loop import tick

from .helpers import T0, add, add_contacts, make_campaign, participants, states, tag_action, traces

FR = [["country_code", "=", "FR"]]


def _start(db: Database, cid: int) -> None:
    with db.transaction() as s:
        cs.start_campaign(session=s, now=T0, campaign_id=cid)


def test_enrolment_follows_filter_and_creates_begin_traces(db: Database) -> None:
    with db.transaction() as s:
        fr = add_contacts(s, [{"email": "a@x.io", "country_code": "FR"}, {"email": "b@x.io", "country_code": "FR"}])
        add_contacts(s, [{"email": "c@x.io", "country_code": "BE"}])
        cid = make_campaign(s, domain=FR)
        a1 = add(s, cid, "One", server_action_id=tag_action(s), interval_number=2, interval_unit="days")
        a2 = add(s, cid, "Two", server_action_id=tag_action(s), interval_number=1, interval_unit="months")
    _start(db, cid)
    tick(db, now=T0)
    assert sorted(p.res_id for p in participants(db, cid)) == fr
    assert [t.schedule_date for t in traces(db, activity_id=a1)] == [T0 + timedelta(days=2)] * 2
    assert [t.schedule_date for t in traces(db, activity_id=a2)] == [T0.replace(month=2)] * 2
    # a second pass enrols nobody twice
    with db.transaction() as s:
        assert enrol_campaign(s, campaign_id=cid, now=T0) == 0
    assert len(participants(db, cid)) == 2


def test_unicity_one_participant_per_non_empty_value(db: Database) -> None:
    with db.transaction() as s:
        ids = add_contacts(
            s,
            [
                {"email": "dup@x.io"}, {"email": "dup@x.io"}, {"email": "solo@x.io"},
                {"email": None}, {"email": None}, {"email": ""},
            ],
        )
        cid = make_campaign(s)
        add(s, cid, "One", server_action_id=tag_action(s))
        # a test participant on the duplicated address does not count for de-duplication
        launch_test(s, campaign_id=cid, res_id=ids[1], now=T0)
    _start(db, cid)
    tick(db, now=T0)
    real = [p for p in participants(db, cid) if not p.is_test]
    assert sorted(p.res_id for p in real) == [ids[0], ids[2], ids[3], ids[4], ids[5]]
    # a later record with an address already enrolled is skipped
    with db.transaction() as s:
        add_contacts(s, [{"email": "solo@x.io"}, {"email": "new@x.io"}], notify=True)
    assert len([p for p in participants(db, cid) if not p.is_test]) == 6


def test_unicity_by_id_enrols_every_record(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "dup@x.io"}, {"email": "dup@x.io"}])
        cid = make_campaign(s, unicity_field="id")
        add(s, cid, "One", server_action_id=tag_action(s))
    _start(db, cid)
    tick(db, now=T0)
    assert len(participants(db, cid)) == 2


def test_archived_records_only_when_included(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}, {"email": "b@x.io", "active": False}])
        off = make_campaign(s, name="Off")
        on = make_campaign(s, name="On", include_archived=True)
        add(s, off, "One", server_action_id=tag_action(s))
        add(s, on, "One", server_action_id=tag_action(s))
    _start(db, off)
    _start(db, on)
    tick(db, now=T0)
    assert len(participants(db, off)) == 1
    assert len(participants(db, on)) == 2


def test_deleted_record_participant_removed_and_traces_canceled(db: Database) -> None:
    with db.transaction() as s:
        ids = add_contacts(s, [{"email": "a@x.io"}, {"email": "b@x.io"}, {"email": "c@x.io"}])
        cid = make_campaign(s)
        act = add(s, cid, "One", server_action_id=tag_action(s), interval_number=1, interval_unit="days")
    _start(db, cid)
    tick(db, now=T0)
    # through the record services (listener) ...
    with db.transaction() as s:
        records.delete_records(session=s, model="contact", ids=[ids[0]], now=T0 + timedelta(hours=1))
    # ... and behind Nurture's back (caught by the full sync)
    with db.transaction() as s:
        s.execute(delete(Contact).where(Contact.id == ids[1]))
    tick(db, now=T0 + timedelta(hours=2))
    by_res = {p.res_id: p.state for p in participants(db, cid)}
    assert by_res == {ids[0]: "removed", ids[1]: "removed", ids[2]: "running"}
    canceled = [t for t in traces(db, activity_id=act) if t.state == "canceled"]
    assert sorted(t.res_id for t in canceled) == ids[:2]
    assert {t.state_message for t in canceled} == {"Record deleted"}
    tick(db, now=T0 + timedelta(days=1))
    assert sorted(states(db, act)) == ["canceled", "canceled", "processed"]


def test_record_that_leaves_and_returns_is_not_enrolled_twice(db: Database) -> None:
    with db.transaction() as s:
        (rid,) = add_contacts(s, [{"email": "a@x.io", "country_code": "FR"}])
        cid = make_campaign(s, domain=FR)
        add(s, cid, "One", server_action_id=tag_action(s), interval_number=1, interval_unit="days")
    _start(db, cid)
    tick(db, now=T0)
    with db.transaction() as s:
        s.execute(update(Contact).where(Contact.id == rid).values(country_code="BE"))
    tick(db, now=T0 + timedelta(hours=1))
    with db.transaction() as s:
        s.execute(update(Contact).where(Contact.id == rid).values(country_code="FR"))
    tick(db, now=T0 + timedelta(hours=2))
    (p,) = participants(db, cid)
    assert p.state == "running"


def test_continuous_enrolment_of_a_record_created_through_services(db: Database) -> None:
    with db.transaction() as s:
        cid = make_campaign(s, domain=FR)
        act = add(s, cid, "One", server_action_id=tag_action(s))
        other = make_campaign(s, name="Stopped")
        add(s, other, "One", server_action_id=tag_action(s))
    _start(db, cid)
    tick(db, now=T0)
    with db.transaction() as s:
        rid = records.create_record(
            session=s, model="contact",
            values={"name": "New", "email": "new@x.io", "country_code": "FR"},
            now=T0 + timedelta(minutes=5),
        )
        records.create_record(
            session=s, model="contact",
            values={"name": "Other", "email": "other@x.io", "country_code": "BE"},
            now=T0 + timedelta(minutes=5),
        )
    # enrolled in the writing transaction, before any sync
    (p,) = participants(db, cid)
    assert p.res_id == rid and p.created_at == T0 + timedelta(minutes=5)
    (t,) = traces(db, activity_id=act)
    assert t.schedule_date == T0 + timedelta(minutes=5)
    assert participants(db, other) == []  # a draft campaign does not enrol
    # an update that makes a record match enrols it too
    with db.transaction() as s:
        be = s.query(Contact).filter_by(email="other@x.io").one().id
        records.update_record(session=s, model="contact", record_id=be, values={"country_code": "FR"},
                              now=T0 + timedelta(minutes=6))
    assert len(participants(db, cid)) == 2


def test_filter_rejection_campaign_filter_and_ancestor_activity_filter(db: Database) -> None:
    with db.transaction() as s:
        a, b, c = add_contacts(
            s,
            [
                {"email": "a@x.io", "country_code": "FR", "city": "Paris"},
                {"email": "b@x.io", "country_code": "FR", "city": "Lyon"},
                {"email": "c@x.io", "country_code": "FR", "city": "Paris"},
            ],
        )
        cid = make_campaign(s, domain=FR)
        root = add(s, cid, "Root", server_action_id=tag_action(s, "R"),
                   domain=[["city", "=", "Paris"]])
        child = add(s, cid, "Child", server_action_id=tag_action(s, "C"), trigger_type="activity",
                    parent_id=root, interval_number=1, interval_unit="days")
        applied = domains.applied_domain(s, activity=activity_service.get_activity(session=s, activity_id=child))
        assert applied == ["&", ["country_code", "=", "FR"], ["city", "=", "Paris"]]
        assert activity_service.applied_count(session=s, activity_id=child, now=T0) == 2
    _start(db, cid)
    tick(db, now=T0)
    by_res = {t.res_id: (t.state, t.state_message) for t in traces(db, activity_id=root)}
    assert by_res[b][0] == "rejected"
    assert by_res[a][0] == by_res[c][0] == "processed"
    # c leaves the campaign filter, a leaves the ancestor's activity filter
    with db.transaction() as s:
        s.execute(update(Contact).where(Contact.id == c).values(country_code="BE"))
        s.execute(update(Contact).where(Contact.id == a).values(city="Nice"))
    tick(db, now=T0 + timedelta(days=1))
    got = {t.res_id: t.state for t in traces(db, activity_id=child)}
    assert got == {a: "rejected", c: "rejected"}
    assert {p.state for p in participants(db, cid)} == {"completed"}


def test_participant_rows_are_unique_per_record(db: Database) -> None:
    import pytest
    from sqlalchemy.exc import IntegrityError

    with db.transaction() as s:
        (rid,) = add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        add(s, cid, "One", server_action_id=tag_action(s))
    _start(db, cid)
    tick(db, now=T0)
    with pytest.raises(IntegrityError), db.transaction() as s:
        s.add(Participant(campaign_id=cid, model="contact", res_id=rid, state="running",
                          is_test=False, created_at=T0, updated_at=T0))
        s.flush()
    assert Trace is not None


def test_a_bulk_enrolment_refreshes_planner_statistics(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: the engine's per-batch statements are planned from the new table sizes
    (stale statistics made the completion check scan the whole trace table per batch)."""
    import nurture.engine.enrol as enrol_mod

    monkeypatch.setattr(enrol_mod, "ANALYZE_AFTER", 50)
    with db.transaction() as s:
        add_contacts(s, [{"email": f"c{i}@x.io"} for i in range(60)])
        cid = make_campaign(s)
        add(s, cid, "One", server_action_id=tag_action(s))
    with db.transaction() as s:
        # the start enrols at once, in its own transaction
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
        assert s.scalar(select(func.count()).select_from(Participant)) == 60
    if db.dialect == "postgresql":
        with db.read() as s:
            sizes = dict(
                s.execute(text("SELECT relname, reltuples FROM pg_class WHERE relname IN ('participant', 'trace')")).all()
            )
        assert sizes == {"participant": 60, "trace": 60}
    assert len(participants(db, cid)) == 60
