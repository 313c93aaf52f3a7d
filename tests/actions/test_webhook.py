"""The webhook action against a real receiver on loopback: queued in the engine's transaction,
POSTed after commit by the delivery core; and its address checks."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from nurture.actions import validate_action
from nurture.channels.queue import MSG_UNKNOWN
from nurture.channels.webhook import delivery as webhook_delivery
from nurture.channels.webhook import transport as webhook
from nurture.channels.webhook.delivery import deliver_due_webhooks
from nurture.channels.webhook.models import WebhookDelivery
from nurture.db import Database
from nurture.engine.models import Trace
from nurture.errors import ValidationError
from tests.fakes.twilio_server import CallbackReceiver

from .helpers import T0, contact, run_action, save_action, user

SECRET = "s3cret-shared-with-the-receiver"


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURTURE_WEBHOOK_ALLOW_PRIVATE", "true")


def deliver(db: Database, now: datetime = T0) -> list[datetime]:
    """Run webhook delivery at ``now`` and at each retry time until nothing is queued."""
    times: list[datetime] = []
    while True:
        deliver_due_webhooks(db, now=now)
        times.append(now)
        with db.read() as s:
            later = s.scalar(
                select(func.min(WebhookDelivery.next_attempt_at)).where(WebhookDelivery.state == "queued")
            )
        if later is None:
            return times
        now = later


def trace_state(db: Database, trace_id: int) -> tuple[str, str | None]:
    with db.read() as s:
        trace = s.get(Trace, trace_id)
        assert trace is not None
        return trace.state, trace.state_message


def outbox(db: Database) -> list[WebhookDelivery]:
    with db.read() as s:
        rows = list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        s.expunge_all()
        return rows


def test_posts_signed_json_with_record_and_context(
    db: Database, receiver: CallbackReceiver, allow_private: None
) -> None:
    with db.transaction() as s:
        bob = user(s, "bob")
        a = contact(s, "Ann", email="ann@x.io", salesperson=bob, tags=["Hot"])
        action = save_action(s, "contact", "webhook", {"url": receiver.url("/hook?x=1"), "secret": SECRET},
                             name="Push")
        run = run_action(s, action, [a], campaign_name="Welcome")
        trace_id = run.trace_of[a]
    assert run.outcomes == {}
    # queued in the transaction, nothing sent yet
    assert receiver.received == []
    (row,) = outbox(db)
    assert (row.state, row.delivery_id, row.trace_id) == ("queued", str(trace_id), trace_id)
    deliver(db)
    (got,) = receiver.received
    (raw,) = receiver.bodies
    assert got.url.endswith("/hook?x=1")
    assert got.headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert got.headers["X-Nurture-Signature"] == expected
    assert got.headers["X-Nurture-Delivery"] == str(trace_id)
    body = json.loads(raw)
    assert body["event"] == "nurture.server_action"
    assert body["campaign"]["name"] == "Welcome"
    assert body["action"] == {"id": action.id, "name": "Push"}
    assert body["trace"]["id"] == trace_id and body["trace"]["is_test"] is False
    assert body["model"] == "contact"
    record = body["record"]
    assert (record["id"], record["name"], record["email"]) == (a, "Ann", "ann@x.io")
    assert record["salesperson"] == {"id": bob, "name": "Bob"}
    assert [t["name"] for t in record["tags"]] == ["Hot"]
    assert record["created_at"].startswith("2026-01-05T09:00")
    assert "phone_valid" not in record
    (row,) = outbox(db)
    assert (row.state, row.response_status, row.attempts, row.sent_at) == ("sent", 204, 1, T0)
    assert trace_state(db, trace_id) == ("processed", None)


def test_selected_fields_and_generated_secret(
    db: Database, receiver: CallbackReceiver, allow_private: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NURTURE_SECRET_KEY", "the-server-secret-key-0123")
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@x.io")
        action = save_action(s, "contact", "webhook", {"url": receiver.url(), "fields": ["email"]})
        secret = json.loads(action.payload)["secret"]
        run_action(s, action, [a])
    deliver(db)
    assert len(secret) >= 40 and secret != "the-server-secret-key-0123"
    (raw,) = receiver.bodies
    assert json.loads(raw)["record"] == {"id": a, "email": "ann@x.io"}
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    assert receiver.received[0].headers["X-Nurture-Signature"] == f"sha256={digest}"


def test_5xx_and_429_are_retried_with_backoff(
    db: Database, receiver: CallbackReceiver, allow_private: None
) -> None:
    receiver.statuses = [503, 429, 200]
    with db.transaction() as s:
        a = contact(s, "Ann")
        action = save_action(s, "contact", "webhook", {"url": receiver.url(), "secret": SECRET, "retries": 2})
        run = run_action(s, action, [a])
    assert run.outcomes == {}
    times = deliver(db)
    assert times == [T0, T0 + timedelta(seconds=0.5), T0 + timedelta(seconds=1.5)]
    assert len(receiver.received) == 3
    assert len({r.headers["X-Nurture-Delivery"] for r in receiver.received}) == 1
    assert len({r for r in receiver.bodies}) == 1
    (row,) = outbox(db)
    assert (row.state, row.attempts, row.response_status) == ("sent", 3, 200)
    assert trace_state(db, run.trace_of[a]) == ("processed", None)


def test_failures_mark_only_their_trace(
    db: Database, receiver: CallbackReceiver, allow_private: None
) -> None:
    receiver.statuses = [404, 204]
    with db.transaction() as s:
        a, b = contact(s, "Ann"), contact(s, "Bob")
        action = save_action(s, "contact", "webhook", {"url": receiver.url(), "secret": SECRET})
        run = run_action(s, action, [a, b])
    deliver(db)
    assert trace_state(db, run.trace_of[a]) == ("error", "Webhook failed: HTTP 404")
    assert trace_state(db, run.trace_of[b]) == ("processed", None)
    assert len(receiver.received) == 2  # a 4xx is not retried
    assert [(r.state, r.response_status) for r in outbox(db)] == [("failed", 404), ("sent", 204)]


def test_retries_exhausted(db: Database, receiver: CallbackReceiver, allow_private: None) -> None:
    receiver.status = 500
    with db.transaction() as s:
        a = contact(s, "Ann")
        action = save_action(s, "contact", "webhook", {"url": receiver.url(), "secret": SECRET, "retries": 1})
        run = run_action(s, action, [a])
    deliver(db)
    assert trace_state(db, run.trace_of[a]) == ("error", "Webhook failed after 2 attempt(s): HTTP 500")
    assert len(receiver.received) == 2


def test_interrupted_delivery_is_never_resent(
    db: Database, receiver: CallbackReceiver, allow_private: None
) -> None:
    with db.transaction() as s:
        a = contact(s, "Ann")
        action = save_action(s, "contact", "webhook", {"url": receiver.url(), "secret": SECRET})
        run = run_action(s, action, [a])
    # a worker claims it (the request is in flight) and dies
    with db.transaction() as s:
        (claimed,) = webhook_delivery.claim(s, now=T0, limit=5, token="dead:1", lease=timedelta(seconds=30))
    assert deliver_due_webhooks(db, now=T0 + timedelta(seconds=10)).claimed == 0  # lease holds
    result = deliver_due_webhooks(db, now=T0 + timedelta(seconds=31))
    assert (result.unknown, result.claimed) == (1, 0)
    (row,) = outbox(db)
    assert row.state == "failed" and row.failure_reason == MSG_UNKNOWN
    with db.read() as s:
        trace = s.get(Trace, run.trace_of[a])
        assert trace is not None and trace.failure_reason == webhook_delivery.FAILURE_UNKNOWN
    assert receiver.received == []


def test_loopback_refused_by_default(db: Database, receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NURTURE_WEBHOOK_ALLOW_PRIVATE", raising=False)
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "webhook", {"url": receiver.url(), "secret": SECRET})
    assert info.value.field == "url"
    # a name that resolves to loopback passes the save-time check and is refused when sent
    monkeypatch.setattr(webhook, "resolve", lambda host, port: ["127.0.0.1"])
    with db.transaction() as s:
        a = contact(s, "Ann")
        action = save_action(s, "contact", "webhook", {"url": "http://hooks.example.com/x", "secret": SECRET})
        run = run_action(s, action, [a])
    deliver(db)
    state, message = trace_state(db, run.trace_of[a])
    assert state == "error" and message is not None
    assert "127.0.0.1" in message and "NURTURE_WEBHOOK_ALLOW_PRIVATE" in message
    assert receiver.received == []


def test_every_resolved_address_must_be_public(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NURTURE_WEBHOOK_ALLOW_PRIVATE", raising=False)
    monkeypatch.setattr(webhook, "resolve", lambda host, port: ["93.184.215.14", "10.1.2.3"])
    with db.transaction() as s:
        a = contact(s, "Ann")
        action = save_action(s, "contact", "webhook", {"url": "https://mixed.example.com/x", "secret": SECRET})
        run = run_action(s, action, [a])
    deliver(db)
    state, message = trace_state(db, run.trace_of[a])
    assert state == "error" and message is not None and "10.1.2.3" in message


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "224.0.0.1", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
     "2002:7f00:1::1", "240.0.0.1"],
)
def test_non_public_addresses(address: str) -> None:
    assert not webhook.is_public(ipaddress.ip_address(address))
    with pytest.raises(webhook.WebhookRefused):
        webhook.check_addresses("h", [address], allowed_private=False)
    chosen = webhook.check_addresses("h", [address], allowed_private=True)
    assert ipaddress.ip_address(chosen) == ipaddress.ip_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert webhook.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://x.example.com"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "https://u:p@x.example.com"}, "url"),
        ({"url": "http://localhost:8000/x"}, "url"),
        ({"url": "http://[::1]/x"}, "url"),
        ({"url": "http://169.254.169.254/latest"}, "url"),
        ({"url": "https://x.example.com", "fields": ["nope"]}, "fields"),
        ({"url": "https://x.example.com", "fields": "email"}, "fields"),
        ({"url": "https://x.example.com", "timeout": 0}, "timeout"),
        ({"url": "https://x.example.com", "retries": 9}, "retries"),
        ({"url": "https://x.example.com", "headers": {}}, "headers"),
    ],
)
def test_validation(payload: dict[str, object], field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NURTURE_WEBHOOK_ALLOW_PRIVATE", raising=False)
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "webhook", payload)
    assert info.value.field == field


def test_private_literal_allowed_by_configuration(allow_private: None) -> None:
    payload = validate_action("contact", "webhook", {"url": "http://10.0.0.5:8080/hook"})
    assert payload["url"] == "http://10.0.0.5:8080/hook" and payload["retries"] == 2
