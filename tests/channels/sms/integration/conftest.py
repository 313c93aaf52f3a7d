"""End-to-end SMS fixtures: the fake Twilio server on loopback, settings, the web app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from nurture.channels.sms import service as sms_service
from nurture.channels.sms.models import SmsMessage
from nurture.channels.sms.providers import twilio_signature
from nurture.cli import cli
from nurture.db import Database
from nurture.records.models import Contact
from tests.channels.harness import (
    BASE_URL,
    HOUR,
    T0,
    AppEnv,
    add_contacts,
    campaign_with_step,
    running_app,
)
from tests.fakes.twilio_server import FakeTwilio, running_twilio

__all__ = ["BASE_URL", "HOUR", "T0", "add_contacts"]

SECRET = "sms-integration-secret-key-0123456789"
HUMAN_UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"


@dataclass
class Env(AppEnv):
    twilio: FakeTwilio | None

    def tick(self, now: datetime) -> str:
        """``nurture tick --now …`` through the CLI."""
        result = CliRunner().invoke(cli, ["tick", "--now", now.isoformat()], env=self.environ)
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.output

    def messages(self) -> list[SmsMessage]:
        return self.rows(SmsMessage)

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
    environ = {"NURTURE_SECRET_KEY": SECRET, "NURTURE_SMS_BACKOFF": "0.01", **extra}
    for settings, full_environ, client, clock in running_app(db, tmp_path, environ):
        yield Env(db, settings, full_environ, client, clock, twilio)


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


def campaign_with_sms(
    db: Database,
    contacts: list[dict[str, Any]],
    *,
    body: str = "Hi {{ record.name }}, our offer: https://shop.example.com/offer",
    opt_out: bool = False,
    children: tuple[str, ...] = ("sms_click", "sms_bounce"),
) -> tuple[int, int, dict[str, int], list[int]]:
    """A running campaign on contacts: one SMS step and a tagging child per trigger."""
    return campaign_with_step(
        db, contacts, name="Spring SMS", step=("Promo", "sms"), children=children,
        template=lambda s, sms: sms_service.create_template(
            session=s, now=T0, activity_id=sms, body=body, opt_out=opt_out
        ),
    )


def tags_of(db: Database, contact_id: int) -> set[str]:
    with db.read() as s:
        contact = s.get(Contact, contact_id)
        assert contact is not None
        return {t.name for t in contact.tags}
