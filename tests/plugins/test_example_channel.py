"""A third message channel from an installed package (examples/nurture-example-channel).

The package declares the activity type ``http_message`` (entry-point group
``nurture.executors``) and the delivery channel of the same name (``nurture.channels``) on
the shared outbox; Nurture itself is not changed. Through the HTTP API a campaign gets an
``http_message`` activity and starts; the engine (``tick``) composes the message in its
batch transaction and the delivery core POSTs it after commit to a real loopback receiver:
once, and retried then failed when the receiver keeps failing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from nurture.accounts import tokens, users
from nurture.channels import registry
from nurture.channels.outbox.models import ChannelMessage
from nurture.channels.queue import MSG_UNKNOWN
from nurture.clock import utcnow
from nurture.db import Database
from nurture.engine.models import Trace
from nurture.worker.loop import drain, tick
from tests.api.conftest import make_app
from tests.fakes.twilio_server import CallbackReceiver, running_receiver

V1 = "/api/v1"


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    yield from running_receiver()


@pytest.fixture
def client(
    db: Database, tmp_path: Path, receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("NURTURE_HTTP_MESSAGE_URL", receiver.url("/messages"))
    monkeypatch.delenv("NURTURE_HTTP_MESSAGE_TEMPLATE", raising=False)
    app = make_app(db, tmp_path)
    with db.transaction() as session:
        user = users.create_user(
            session, login="admin@example.com", role="admin", name="Admin", now=utcnow()
        )
        token, _row = tokens.create_token(session, user, "admin token", now=utcnow())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


def start_campaign(client: TestClient) -> int:
    """A running campaign whose only step is an ``http_message`` activity; Ann's record id."""
    r = client.post(f"{V1}/records/contact", json={"name": "Ann", "email": "ann@example.com"})
    assert r.status_code == 201, r.text
    ann = int(r.json()["id"])
    r = client.post(f"{V1}/campaigns", json={"name": "Welcome", "model": "contact"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = client.post(
        f"{V1}/campaigns/{cid}/activities", json={"name": "Ping", "activity_type": "http_message"}
    )
    assert r.status_code == 201, r.text
    r = client.post(f"{V1}/campaigns/{cid}/start")
    assert r.status_code == 200, r.text
    return ann


def the_trace(db: Database) -> Trace:
    with db.read() as s:
        (trace,) = s.scalars(select(Trace))
        s.expunge(trace)
        return trace


def the_message(db: Database) -> ChannelMessage:
    with db.read() as s:
        (message,) = s.scalars(select(ChannelMessage))
        s.expunge(message)
        return message


def test_the_plugin_declares_an_activity_type_and_a_channel() -> None:
    assert [p.name for p in entry_points(group="nurture.executors", name="http_message")] == [
        "http_message"
    ]
    assert "http_message" in registry.names()
    assert registry.LOAD_REPORT["http_message"] is None
    assert {"email", "sms", "webhook"} <= set(registry.names())


def test_message_is_posted_once_after_commit(client: TestClient, db: Database, receiver: CallbackReceiver) -> None:
    ann = start_campaign(client)
    now = utcnow() + timedelta(minutes=1)
    tick(db, now=now)

    trace = the_trace(db)
    assert (trace.state, trace.state_message) == ("processed", None)
    assert trace.sent_at == now
    assert len(receiver.bodies) == 1
    body = json.loads(receiver.bodies[0])
    assert body == {
        "channel": "http_message",
        "message": body["message"],
        "trace": trace.id,
        "to": f"contact/{ann}",
        "text": "Hello Ann, news from Welcome",
        "test": False,
    }
    headers = {k.lower(): v for k, v in receiver.received[0].headers.items()}
    assert headers["idempotency-key"] == str(trace.id)
    message = the_message(db)
    assert (message.state, message.attempts, message.channel) == ("sent", 1, "http_message")
    assert message.sent_at == now

    # nothing is sent twice: later cycles find nothing due
    tick(db, now=now + timedelta(hours=1))
    assert len(receiver.bodies) == 1
    assert the_message(db).state == "sent"


def test_failing_receiver_is_retried_then_fails(
    client: TestClient, db: Database, receiver: CallbackReceiver
) -> None:
    receiver.status = 503
    start_campaign(client)
    now: datetime | None = utcnow() + timedelta(minutes=1)
    times = []
    while now is not None:  # a cycle at each retry time until nothing is queued
        tick(db, now=now)
        times.append(now)
        message = the_message(db)
        now = message.next_attempt_at if message.state == "queued" else None
    # three attempts (max_attempts), 60 s then 300 s apart, one POST each
    assert len(receiver.bodies) == 3 == len(times)
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [
        timedelta(seconds=60), timedelta(seconds=300)
    ]
    assert (message.state, message.attempts) == ("failed", 3)
    assert message.failure_reason == "after 3 attempt(s): HTTP 503"
    trace = the_trace(db)
    assert trace.state == "error"
    assert trace.failure_reason == "http_message_failed"
    assert trace.state_message == "Not delivered: after 3 attempt(s): HTTP 503"
    assert {json.loads(b)["trace"] for b in receiver.bodies} == {trace.id}

    tick(db, now=times[-1] + timedelta(days=1))
    assert len(receiver.bodies) == 3


def queue_only(client: TestClient, db: Database) -> datetime:
    """Start the campaign and run the engine without delivery: the message is queued."""
    start_campaign(client)
    now = utcnow() + timedelta(minutes=1)
    assert drain(db, now=now, worker_id="engine-only").processed == 1
    assert the_message(db).state == "queued"
    return now


def test_interrupted_send_is_failed_not_resent(
    client: TestClient, db: Database, receiver: CallbackReceiver
) -> None:
    now = queue_only(client, db)
    with db.transaction() as s:  # a worker died while posting it
        s.execute(
            update(ChannelMessage).values(
                state="sending", claimed_by="dead:1", lease_until=now, attempts=1
            )
        )
    tick(db, now=now + timedelta(seconds=1))
    assert receiver.bodies == []
    message = the_message(db)
    assert (message.state, message.failure_reason) == ("failed", MSG_UNKNOWN)
    assert the_trace(db).failure_reason == "http_message_unknown"


def test_a_channel_delivers_only_its_own_rows(
    client: TestClient, db: Database, receiver: CallbackReceiver
) -> None:
    now = queue_only(client, db)
    with db.transaction() as s:  # a row of a channel that is not installed
        s.execute(update(ChannelMessage).values(channel="not_installed"))
    tick(db, now=now)
    assert receiver.bodies == []
    assert the_message(db).state == "queued"
    with db.transaction() as s:
        s.execute(update(ChannelMessage).values(channel="http_message"))
    tick(db, now=now)
    assert len(receiver.bodies) == 1
    assert the_message(db).state == "sent"
