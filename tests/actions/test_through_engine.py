"""Each server action kind through the engine: an ``action`` activity in a running campaign,
executed by ``nurture tick --now …`` (click's CliRunner), on SQLite and PostgreSQL.

The actions are created with
:func:`nurture.actions.service.create_server_action` (``action_type=X, payload={...}``),
validated by :func:`nurture.actions.validate_action`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import nurture.actions  # noqa: F401  (registers the handlers in this process)
from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.channels.webhook import transport as webhook
from nurture.cli import cli
from nurture.db import Database
from nurture.engine.models import Trace
from nurture.records import blacklists, mailing_lists
from nurture.records import models as m
from nurture.records import service as records
from tests.fakes.twilio_server import CallbackReceiver

from .helpers import T0, contact, user

RUN_AT = T0 + timedelta(minutes=5)


@pytest.fixture
def tick(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("NURTURE_DATABASE_URL", db.url)
    monkeypatch.setenv("NURTURE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NURTURE_SECRET_KEY", "through-the-engine-secret-key")
    runner = CliRunner()

    def run(now: datetime = RUN_AT) -> str:
        result = runner.invoke(cli, ["tick", "--now", now.isoformat()])
        assert result.exit_code == 0, result.output
        return result.output

    yield run


def _campaign(s: Session, model: str, action_type: str, payload: dict[str, Any], **kw: Any) -> int:
    campaign = cs.create_campaign(session=s, now=T0, name=f"Run {action_type}", model=model, **kw)
    action = action_service.create_server_action(
        session=s, now=T0, name=action_type, model=model, action_type=action_type, payload=payload,
    )
    activity = activity_service.add_activity(
        session=s, now=T0, campaign_id=campaign.id, name="Act", activity_type="action",
        server_action_id=action.id,
    )
    cs.start_campaign(session=s, now=T0, campaign_id=campaign.id)
    return activity.id


def _states(db: Database, activity_id: int) -> dict[int, tuple[str, str | None]]:
    with db.read() as s:
        return {
            t.res_id: (t.state, t.state_message)
            for t in s.scalars(select(Trace).where(Trace.activity_id == activity_id))
        }


def test_add_to_list(db: Database, tick: Any) -> None:
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@x.io")
        b = contact(s, "Bob")
        act = _campaign(s, "contact", "add_to_list", {"list": "Newsletter"})
    output = tick()
    assert "processed 1" in output and "canceled 1" in output, output
    states = _states(db, act)
    assert states[a] == ("processed", None)
    assert states[b] == ("canceled", "no email address")
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(m.MailingSubscription)) == 1


def test_remove_from_list(db: Database, tick: Any) -> None:
    with db.transaction() as s:
        mc = records.create_record(session=s, model="mailing_contact", values={"name": "M", "email": "m@x.io"}, now=T0)
        list_id = mailing_lists.get_or_create_mailing_list(session=s, name="News", now=T0)
        mailing_lists.subscribe(session=s, contact_id=mc, list_id=list_id, now=T0)
        act = _campaign(s, "mailing_contact", "remove_from_list", {"list": "News", "opt_out": True})
    tick()
    assert _states(db, act) == {mc: ("processed", None)}
    with db.read() as s:
        assert mailing_lists.is_opted_out(session=s, contact_id=mc, list_id=list_id)


def test_crm_activity(db: Database, tick: Any) -> None:
    with db.transaction() as s:
        bob = user(s, "bob")
        a = contact(s, "Ann", salesperson=bob)
        act = _campaign(s, "contact", "crm_activity", {
            "activity_type": "call", "summary": "Call {{ record.name }}", "user_field": "salesperson",
            "due_in": 1, "due_unit": "days",
        })
    tick()
    assert _states(db, act) == {a: ("processed", None)}
    with db.read() as s:
        row = s.scalars(select(m.CrmActivity)).one()
        assert (row.summary, row.user_id, row.res_id, row.activity_type) == ("Call Ann", bob, a, "call")
        assert row.due_date == RUN_AT + timedelta(days=1)


def test_create_record(db: Database, tick: Any) -> None:
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@x.io")
        act = _campaign(s, "contact", "create_record", {
            "model": "lead", "values": {"type": "opportunity"},
            "mapping": {"name": "name", "email": "email", "contact": "id"},
        })
    tick()
    assert _states(db, act) == {a: ("processed", None)}
    with db.read() as s:
        lead = s.scalars(select(m.Lead)).one()
        assert (lead.name, lead.email, lead.contact_id, lead.type) == ("Ann", "ann@x.io", a, "opportunity")


def test_blacklist(db: Database, tick: Any) -> None:
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@x.io", mobile="06 12 34 56 78", country_code="FR")
        act = _campaign(s, "contact", "blacklist", {"what": "both"})
    tick()
    assert _states(db, act) == {a: ("processed", None)}
    with db.read() as s:
        assert blacklists.is_email_blacklisted(session=s, email="ann@x.io")
        assert blacklists.is_phone_blacklisted(session=s, number="+33612345678")


def test_webhook(db: Database, tick: Any, receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURTURE_WEBHOOK_ALLOW_PRIVATE", "true")
    receiver.statuses = [500]
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@x.io")
        act = _campaign(s, "contact", "webhook", {"url": receiver.url("/hook"), "secret": "k" * 20})
    tick()  # queued and POSTed after the batch committed: 500, retried after a backoff
    assert _states(db, act) == {a: ("processed", None)}
    assert len(receiver.received) == 1
    tick(RUN_AT + timedelta(seconds=1))
    assert _states(db, act) == {a: ("processed", None)}
    assert len(receiver.received) == 2
    assert len({r.headers["X-Nurture-Delivery"] for r in receiver.received}) == 1
    body = json.loads(receiver.bodies[-1])
    assert body["record"]["email"] == "ann@x.io" and body["activity"]["id"] == act


def test_webhook_refused_for_loopback_by_default(
    db: Database, tick: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NURTURE_WEBHOOK_ALLOW_PRIVATE", raising=False)
    monkeypatch.setattr(webhook, "resolve", lambda host, port: ["127.0.0.1"])
    with db.transaction() as s:
        a = contact(s, "Ann")
        act = _campaign(s, "contact", "webhook", {"url": "https://hooks.example.com/x"})
    tick()
    state, message = _states(db, act)[a]
    assert state == "error" and message is not None and "127.0.0.1" in message


def test_multi(db: Database, tick: Any) -> None:
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@x.io")
        first = action_service.create_server_action(session=s, now=T0, name="Tag", model="contact", add_tags=["Hot"])
        second = action_service.create_server_action(
            session=s, now=T0, name="List", model="contact", action_type="add_to_list",
            payload={"list": "Hot list"},
        )
        act = _campaign(s, "contact", "multi", {"actions": [first.id, second.id]})
    tick()
    assert _states(db, act) == {a: ("processed", None)}
    with db.read() as s:
        c = s.get(m.Contact, a)
        assert c is not None and [t.name for t in c.tags] == ["Hot"]
        assert s.scalar(select(m.MailingList.name)) == "Hot list"


def test_plugin(db: Database, tick: Any) -> None:
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@example.com")
        b = contact(s, "Bob")
        act = _campaign(s, "contact", "example_tag_domain", {})
    tick()
    states = _states(db, act)
    assert states[a] == ("processed", None)
    assert states[b] == ("error", "no email address")
    with db.read() as s:
        c = s.get(m.Contact, a)
        assert c is not None and [t.name for t in c.tags] == ["domain:example.com"]


def test_unknown_type_is_refused_at_save(db: Database) -> None:
    from nurture.errors import ValidationError

    with db.transaction() as s, pytest.raises(ValidationError) as info:
        action_service.create_server_action(
            session=s, now=T0, name="x", model="contact", action_type="exec_python", payload={"code": "1"},
        )
    assert info.value.field == "action_type"
