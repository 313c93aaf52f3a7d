"""End-to-end fixtures: a real SMTP server on loopback (aiosmtpd), settings, the web app."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from nurture.channels.email import service as email_service
from nurture.channels.email.models import MailMessage
from nurture.db import Database
from tests.channels.harness import BASE_URL, HOUR, T0, AppEnv, campaign_with_step, running_app

from ..smtp_sink import Sink, free_port

__all__ = ["BASE_URL", "HOUR", "T0"]

SECRET = "integration-test-secret-key-0123456789"
MAIL_DOMAIN = "mail.nurture.test"
HUMAN_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0"
CORPUS = Path(__file__).parent.parent / "corpus"


@dataclass
class Env(AppEnv):
    sink: Sink
    port: int

    def messages(self) -> list[EmailMessage]:
        out = []
        for received in self.sink.received:
            parsed = email.message_from_bytes(received.content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out

    def mail_rows(self) -> list[MailMessage]:
        return self.rows(MailMessage)


@pytest.fixture
def env(db: Database, tmp_path: Path) -> Iterator[Env]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    environ = {
        "NURTURE_SECRET_KEY": SECRET,
        "NURTURE_MAIL_DOMAIN": MAIL_DOMAIN,
        "NURTURE_MAIL_FROM": "Acme News <news@acme.test>",
        "NURTURE_SMTP_URL": f"smtp://127.0.0.1:{port}?starttls=0&timeout=5",
    }
    try:
        for settings, full_environ, client, clock in running_app(db, tmp_path, environ):
            yield Env(db, settings, full_environ, client, clock, sink, port)
    finally:
        controller.stop()


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
    return campaign_with_step(
        db, contacts, name="Spring", step=("Welcome", "email"), children=children,
        template=lambda s, mail: email_service.create_template(
            session=s, now=T0, activity_id=mail, subject=subject, body_html=html,
            mailing_list_id=mailing_list_id,
        ),
    )


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

