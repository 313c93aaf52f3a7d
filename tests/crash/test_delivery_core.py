"""The shared delivery core in one process: claim as you go, record before the next claim,
leases renewed by a heartbeat, a crash mid-round (simulated by an exception the channel does
not catch) leaving only the hand-over in flight uncertain."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.channels.email import delivery
from nurture.channels.email.context import EMAIL as email_service
from nurture.channels.email.models import MailMessage
from nurture.channels.email.transports import MemoryOutbox, SendResult
from nurture.channels.queue import Heartbeat, default_lease, update_claimed
from nurture.config import ConfigError, load_settings
from nurture.db import Database
from nurture.engine.enrol import sync_campaigns
from nurture.engine.execute import run_due
from tests.channels.email.integration.conftest import campaign_with_email

T0 = datetime(2026, 1, 5, 9, 0, 0)


class Crash(BaseException):
    """Stands for the process dying: nothing in the delivery loop catches it."""


class CrashingOutbox(MemoryOutbox):
    def __init__(self, crash_on: int) -> None:
        super().__init__()
        self.crash_on = crash_on
        self.calls = 0

    def send(
        self, message: EmailMessage | bytes, *, envelope_from: str, recipients: Sequence[str]
    ) -> SendResult:
        self.calls += 1
        if self.calls == self.crash_on:
            raise Crash()
        return super().send(message, envelope_from=envelope_from, recipients=recipients)


@pytest.fixture
def queued(db: Database, tmp_path: Path) -> Iterator[Database]:
    email_service.configure(load_settings({
        "NURTURE_DATA_DIR": str(tmp_path), "NURTURE_DATABASE_URL": db.url,
        "NURTURE_SECRET_KEY": "delivery-core-secret-key-0123", "NURTURE_BASE_URL": "http://n.test",
    }))
    campaign_with_email(db, [{"name": f"P{i}", "email": f"p{i}@example.org"} for i in range(10)], children=())
    sync_campaigns(db, now=T0, full=True)
    run_due(db, now=T0, worker_id="w")
    try:
        yield db
    finally:
        delivery.reset_transport()
        email_service._context = None


def rows(db: Database) -> list[tuple[str, str, str | None]]:
    with db.read() as s:
        return [
            (r.email, r.state, r.failure_type)
            for r in s.scalars(select(MailMessage).order_by(MailMessage.id))
        ]


def test_a_crash_mid_round_leaves_only_the_open_hand_over_uncertain(queued: Database) -> None:
    db = queued
    transport = CrashingOutbox(crash_on=4)
    with pytest.raises(Crash):
        delivery.deliver_due(db, now=T0, transport=transport)
    got = rows(db)
    assert [state for _, state, _ in got] == ["sent"] * 3 + ["sending"] + ["queued"] * 6
    assert len(transport.entries) == 3
    # another worker at once: the six never attempted go out; the open one waits for its lease
    other = MemoryOutbox()
    result = delivery.deliver_due(db, now=T0 + timedelta(seconds=1), transport=other)
    assert (result.sent, result.unknown) == (6, 0)
    # after the lease: failed as unknown, never resent
    later = delivery.deliver_due(db, now=T0 + delivery.DEFAULT_LEASE + timedelta(seconds=1), transport=other)
    assert (later.claimed, later.unknown) == (0, 1)
    final = rows(db)
    assert [state for _, state, _ in final].count("sent") == 9
    assert [(e, s, f) for e, s, f in final if s != "sent"] == [(got[3][0], "failed", "mail_unknown")]
    delivered = [r for entry in transport.entries + other.entries for r in entry.recipients]
    assert sorted(delivered) == sorted(e for e, s, _ in final if s == "sent")


def test_the_heartbeat_renews_the_lease_and_a_stale_token_records_nothing(queued: Database) -> None:
    db = queued
    lease = timedelta(seconds=30)
    with db.transaction() as s:
        (claimed,) = delivery.claim(s, now=T0, limit=1, token="w:1", lease=lease)
    beat = Heartbeat(db, MailMessage, token="w:1", now=T0, lease=lease)
    assert beat.renew() == 1
    with db.read() as s:
        until = s.scalar(select(MailMessage.lease_until).where(MailMessage.id == claimed.id))
    assert until is not None and until >= T0 + lease
    # another worker recovers it after the lease; the first worker's late outcome is dropped
    assert delivery.deliver_due(db, now=until + timedelta(seconds=1), transport=MemoryOutbox()).unknown == 1
    with db.transaction() as s:
        assert not update_claimed(s, MailMessage, claimed.id, token="w:1", now=T0, state="sent")
    assert beat.renew() == 0


def test_lease_setting() -> None:
    assert default_lease({}) == timedelta(seconds=30)
    assert default_lease({"NURTURE_DELIVERY_LEASE": "2.5"}) == timedelta(seconds=2.5)
    for bad in ("soon", "0"):
        with pytest.raises(ConfigError, match="NURTURE_DELIVERY_LEASE"):
            default_lease({"NURTURE_DELIVERY_LEASE": bad})
