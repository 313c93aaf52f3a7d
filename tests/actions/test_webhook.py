"""The webhook action against a real receiver on loopback, and its address checks."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json

import pytest

from nurture.actions import validate_action, webhook
from nurture.db import Database
from nurture.errors import ValidationError
from tests.fakes.twilio_server import CallbackReceiver

from .helpers import contact, run_action, save_action, user

SECRET = "s3cret-shared-with-the-receiver"


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NURTURE_WEBHOOK_ALLOW_PRIVATE", "true")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(webhook, "sleep", slept.append)
    return slept


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


def test_selected_fields_and_generated_secret(
    db: Database, receiver: CallbackReceiver, allow_private: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NURTURE_SECRET_KEY", "the-server-secret-key-0123")
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@x.io")
        action = save_action(s, "contact", "webhook", {"url": receiver.url(), "fields": ["email"]})
        secret = json.loads(action.payload)["secret"]
        run_action(s, action, [a])
    assert len(secret) >= 40 and secret != "the-server-secret-key-0123"
    (raw,) = receiver.bodies
    assert json.loads(raw)["record"] == {"id": a, "email": "ann@x.io"}
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    assert receiver.received[0].headers["X-Nurture-Signature"] == f"sha256={digest}"


def test_5xx_and_429_are_retried(
    db: Database, receiver: CallbackReceiver, allow_private: None, no_sleep: list[float]
) -> None:
    receiver.statuses = [503, 429, 200]
    with db.transaction() as s:
        a = contact(s, "Ann")
        action = save_action(s, "contact", "webhook", {"url": receiver.url(), "secret": SECRET, "retries": 2})
        run = run_action(s, action, [a])
    assert run.outcomes == {}
    assert len(receiver.received) == 3
    assert no_sleep == [0.5, 1.0]
    assert len({r.headers["X-Nurture-Delivery"] for r in receiver.received}) == 1


def test_failures_mark_only_their_trace(
    db: Database, receiver: CallbackReceiver, allow_private: None
) -> None:
    receiver.statuses = [404, 204]
    with db.transaction() as s:
        a, b = contact(s, "Ann"), contact(s, "Bob")
        action = save_action(s, "contact", "webhook", {"url": receiver.url(), "secret": SECRET})
        run = run_action(s, action, [a, b])
    failed = run.of(a)
    assert failed is not None and (failed.state, failed.message) == ("error", "Webhook failed: HTTP 404")
    assert run.of(b) is None
    assert len(receiver.received) == 2  # a 4xx is not retried


def test_retries_exhausted(db: Database, receiver: CallbackReceiver, allow_private: None) -> None:
    receiver.status = 500
    with db.transaction() as s:
        a = contact(s, "Ann")
        action = save_action(s, "contact", "webhook", {"url": receiver.url(), "secret": SECRET, "retries": 1})
        run = run_action(s, action, [a])
    failed = run.of(a)
    assert failed is not None and failed.message == "Webhook failed after 2 attempt(s): HTTP 500"


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
    failed = run.of(a)
    assert failed is not None and failed.state == "error"
    assert "127.0.0.1" in failed.message and "NURTURE_WEBHOOK_ALLOW_PRIVATE" in failed.message
    assert receiver.received == []


def test_every_resolved_address_must_be_public(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NURTURE_WEBHOOK_ALLOW_PRIVATE", raising=False)
    monkeypatch.setattr(webhook, "resolve", lambda host, port: ["93.184.215.14", "10.1.2.3"])
    with db.transaction() as s:
        a = contact(s, "Ann")
        action = save_action(s, "contact", "webhook", {"url": "https://mixed.example.com/x", "secret": SECRET})
        run = run_action(s, action, [a])
    failed = run.of(a)
    assert failed is not None and "10.1.2.3" in failed.message


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
