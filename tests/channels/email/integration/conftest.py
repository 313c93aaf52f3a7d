"""End-to-end fixtures: a real SMTP server on loopback (aiosmtpd), settings, the web app."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.channels.email import delivery
from nurture.channels.email import service as email_service
from nurture.channels.email.models import MailMessage
from nurture.config import Settings, load_settings
from nurture.db import Database
from nurture.engine.models import Trace
from nurture.records.models import Contact
from nurture.runtime import Runtime
from nurture.web.app import create_app

from ..smtp_sink import Sink, free_port

T0 = datetime(2026, 1, 5, 9, 0, 0)
SECRET = "integration-test-secret-key-0123456789"
BASE_URL = "http://nurture.test"
MAIL_DOMAIN = "mail.nurture.test"
HUMAN_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0"
CORPUS = Path(__file__).parent.parent / "corpus"


@dataclass
class Env:
    db: Database
    sink: Sink
    port: int
    settings: Settings
    environ: dict[str, str]
    client: TestClient
    clock: list[datetime]

    def at(self, when: datetime) -> None:
        """Set the time the web app sees."""
        self.clock[0] = when

    def messages(self) -> list[EmailMessage]:
        out = []
        for received in self.sink.received:
            parsed = email.message_from_bytes(received.content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out

    def mail_rows(self) -> list[MailMessage]:
        with self.db.read() as s:
            rows = list(s.scalars(select(MailMessage).order_by(MailMessage.id)))
            s.expunge_all()
            return rows

    def trace(self, trace_id: int) -> Trace:
        with self.db.read() as s:
            row = s.get(Trace, trace_id)
            assert row is not None
            s.expunge(row)
            return row


@pytest.fixture
def env(db: Database, tmp_path: Path) -> Iterator[Env]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    environ = {
        "NURTURE_DATA_DIR": str(tmp_path / "data"),
        "NURTURE_DATABASE_URL": db.url,
        "NURTURE_SECRET_KEY": SECRET,
        "NURTURE_BASE_URL": BASE_URL,
        "NURTURE_MAIL_DOMAIN": MAIL_DOMAIN,
        "NURTURE_MAIL_FROM": "Acme News <news@acme.test>",
        "NURTURE_SMTP_URL": f"smtp://127.0.0.1:{port}?starttls=0&timeout=5",
        "NURTURE_EMBEDDED_WORKER": "false",
    }
    settings = load_settings(environ)
    email_service.configure(settings)
    app = create_app(Runtime(settings=settings, db=db))
    clock = [T0]
    app.state.tracking_clock = lambda: clock[0]
    client = TestClient(app, follow_redirects=False)
    try:
        yield Env(db, sink, port, settings, environ, client, clock)
    finally:
        client.close()
        controller.stop()
        delivery.reset_transport()
        email_service._context = None


def campaign_with_email(
    db: Database,
    contacts: list[dict[str, Any]],
    *,
    html: str = '<p>Hello {{ record.name }}</p><p><a href="https://shop.example.com/offer">Offer</a></p>',
    subject: str = "Hello {{ record.name | default('there') }}",
    children: tuple[str, ...] = ("mail_open", "mail_click", "mail_reply", "mail_bounce"),
    mailing_list_id: int | None = None,
) -> tuple[int, int, dict[str, int], list[int]]:
    """A running campaign on contacts: one email step and a tagging child per trigger."""
    with db.transaction() as s:
        ids = add_contacts(s, contacts)
        cid = cs.create_campaign(session=s, now=T0, name="Spring", model="contact", domain=None).id
        mail = activity_service.add_activity(session=s, now=T0, campaign_id=cid, name="Welcome", activity_type="email").id
        email_service.create_template(
            session=s, now=T0, activity_id=mail, subject=subject, body_html=html,
            mailing_list_id=mailing_list_id,
        )
        kids = {
            trigger: activity_service.add_activity(
                session=s, now=T0, campaign_id=cid, name=f"On {trigger}", activity_type="action",
                server_action_id=action_service.create_server_action(
                    session=s, now=T0, name=f"tag {trigger}", model="contact", add_tags=[trigger]
                ).id,
                trigger_type=trigger, parent_id=mail, interval_number=0, interval_unit="hours",
            ).id
            for trigger in children
        }
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    return cid, mail, kids, ids


def add_contacts(s: Session, rows: list[dict[str, Any]]) -> list[int]:
    ids = []
    for row in rows:
        contact = Contact(
            name=row.get("name", "c"), email=row.get("email"), active=True, created_at=T0, updated_at=T0
        )
        s.add(contact)
        s.flush()
        ids.append(contact.id)
    return ids


def links_of(message: EmailMessage) -> list[str]:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return re.findall(r'(?:href|src)="([^"]+)"', str(part.get_content()))


def path_of(url: str) -> str:
    assert url.startswith(BASE_URL), url
    return url[len(BASE_URL):].replace("&amp;", "&")


def corpus(name: str, token: str) -> bytes:
    text = (CORPUS / name).read_text(encoding="utf-8")
    text = text.replace("@UTOKEN@", token.upper()).replace("@TOKEN@", token)
    text = text.replace("news.example.com", MAIL_DOMAIN)
    return text.encode("utf-8")


HOUR = timedelta(hours=1)
