"""End-to-end SMS fixtures: the fake Twilio server on loopback, settings, the web app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.channels.email import delivery as email_delivery
from nurture.channels.email import service as email_service
from nurture.channels.sms import service as sms_service
from nurture.channels.sms.models import SmsMessage
from nurture.channels.sms.providers import twilio_signature
from nurture.cli import cli
from nurture.config import Settings, load_settings
from nurture.db import Database
from nurture.engine.models import Trace
from nurture.records.models import Contact
from nurture.runtime import Runtime
from nurture.web.app import create_app
from tests.fakes.twilio_server import FakeTwilio, running_twilio

T0 = datetime(2026, 1, 5, 9, 0, 0)
HOUR = timedelta(hours=1)
SECRET = "sms-integration-secret-key-0123456789"
BASE_URL = "http://nurture.test"
HUMAN_UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"


@dataclass
class Env:
    db: Database
    settings: Settings
    environ: dict[str, str]
    client: TestClient
    clock: list[datetime]
    twilio: FakeTwilio | None

    def at(self, when: datetime) -> None:
        self.clock[0] = when

    def tick(self, now: datetime) -> str:
        """``nurture tick --now …`` through the CLI."""
        result = CliRunner().invoke(cli, ["tick", "--now", now.isoformat()], env=self.environ)
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.output

    def messages(self) -> list[SmsMessage]:
        with self.db.read() as s:
            rows = list(s.scalars(select(SmsMessage).order_by(SmsMessage.id)))
            s.expunge_all()
            return rows

    def trace(self, trace_id: int) -> Trace:
        with self.db.read() as s:
            row = s.get(Trace, trace_id)
            assert row is not None
            s.expunge(row)
            return row

    def traces_of(self, activity_id: int) -> list[Trace]:
        with self.db.read() as s:
            rows = list(s.scalars(select(Trace).where(Trace.activity_id == activity_id).order_by(Trace.id)))
            s.expunge_all()
            return rows

    def post_status(self, sid: str, status: str, *, forge: bool = False, error_code: str | None = None) -> int:
        """What the fake Twilio posts to the message's ``StatusCallback``, sent to the app."""
        assert self.twilio is not None
        message = self.twilio.messages[sid]
        assert message.status_callback and message.status_callback.startswith(BASE_URL)
        form = self.twilio.callback_form(sid, status, error_code=error_code)
        token = "forged-" + self.twilio.auth_token if forge else self.twilio.auth_token
        signature = twilio_signature(message.status_callback, form, token)
        response = self.client.post(
            message.status_callback[len(BASE_URL):],
            content=urlencode(form),
            headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
        )
        return int(response.status_code)


def _make_env(db: Database, tmp_path: Path, extra: dict[str, str], twilio: FakeTwilio | None) -> Iterator[Env]:
    environ = {
        "NURTURE_DATA_DIR": str(tmp_path / "data"),
        "NURTURE_DATABASE_URL": db.url,
        "NURTURE_SECRET_KEY": SECRET,
        "NURTURE_BASE_URL": BASE_URL,
        "NURTURE_EMBEDDED_WORKER": "false",
        "NURTURE_SMS_BACKOFF": "0.01",
        **extra,
    }
    settings = load_settings(environ)
    email_service.configure(settings)
    sms_service.configure(settings)
    app = create_app(Runtime(settings=settings, db=db))
    clock = [T0]
    app.state.tracking_clock = lambda: clock[0]
    client = TestClient(app, follow_redirects=False)
    try:
        yield Env(db, settings, environ, client, clock, twilio)
    finally:
        client.close()
        sms_service.reset()
        email_delivery.reset_transport()
        email_service._context = None


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running_twilio()


@pytest.fixture
def env(db: Database, tmp_path: Path, twilio: FakeTwilio) -> Iterator[Env]:
    """The ``http`` provider pointed at the fake Twilio server."""
    extra = {"NURTURE_SMS_URL": twilio.base_url, "NURTURE_SMS_FROM": "+15005550006"}
    yield from _make_env(db, tmp_path, extra, twilio)


@pytest.fixture
def outbox_env(db: Database, tmp_path: Path) -> Iterator[Env]:
    """No SMS settings: the default ``outbox`` provider."""
    yield from _make_env(db, tmp_path, {}, None)


def add_contacts(s: Session, rows: list[dict[str, Any]]) -> list[int]:
    ids = []
    for row in rows:
        contact = Contact(
            name=row.get("name", "c"),
            email=row.get("email"),
            mobile=row.get("mobile"),
            phone=row.get("phone"),
            country_code=row.get("country_code"),
            active=True,
            created_at=T0,
            updated_at=T0,
        )
        s.add(contact)
        s.flush()
        ids.append(contact.id)
    return ids


def campaign_with_sms(
    db: Database,
    contacts: list[dict[str, Any]],
    *,
    body: str = "Hi {{ record.name }}, our offer: https://shop.example.com/offer",
    opt_out: bool = False,
    children: tuple[str, ...] = ("sms_click", "sms_bounce"),
) -> tuple[int, int, dict[str, int], list[int]]:
    """A running campaign on contacts: one SMS step and a tagging child per trigger."""
    with db.transaction() as s:
        ids = add_contacts(s, contacts)
        cid = cs.create_campaign(session=s, now=T0, name="Spring SMS", model="contact", domain=None).id
        sms = activity_service.add_activity(session=s, now=T0, campaign_id=cid, name="Promo", activity_type="sms").id
        sms_service.create_template(session=s, now=T0, activity_id=sms, body=body, opt_out=opt_out)
        kids = {
            trigger: activity_service.add_activity(
                session=s, now=T0, campaign_id=cid, name=f"On {trigger}", activity_type="action",
                server_action_id=action_service.create_server_action(
                    session=s, now=T0, name=f"tag {trigger}", model="contact", add_tags=[trigger]
                ).id,
                trigger_type=trigger, parent_id=sms, interval_number=0, interval_unit="hours",
            ).id
            for trigger in children
        }
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    return cid, sms, kids, ids


def tags_of(db: Database, contact_id: int) -> set[str]:
    with db.read() as s:
        contact = s.get(Contact, contact_id)
        assert contact is not None
        return {t.name for t in contact.tags}
