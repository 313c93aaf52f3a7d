"""Transactional email / SMS server actions through the engine (``nurture tick``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from nurture.actions import service as action_service
from nurture.actions import validate_action
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.channels.email.bounces import AUTO_BLACKLIST_REASON
from nurture.channels.email.models import MailMessage
from nurture.db import Database
from nurture.errors import ValidationError
from nurture.records import blacklists

from .conftest import HOUR, T0, Env, add_contacts


def campaign_with_action(db: Database, contacts: list[dict[str, Any]], payload: dict[str, Any]) -> tuple[int, list[int]]:
    """A running contact campaign whose only step is a transactional action at begin."""
    with db.transaction() as s:
        ids = add_contacts(s, contacts)
        cid = cs.create_campaign(session=s, now=T0, name="Orders", model="contact", domain=None).id
        action = action_service.create_server_action(
            session=s, now=T0, name="confirm", model="contact", action_type="transactional", payload=payload
        )
        step = activity_service.add_activity(
            session=s, now=T0, campaign_id=cid, name="Confirm", activity_type="action",
            server_action_id=action.id,
        ).id
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    return step, ids


def test_transactional_sms_ignores_phone_blacklist_but_not_bounces(env: Env) -> None:
    assert env.twilio is not None
    with env.db.transaction() as s:
        blacklists.blacklist_phone(session=s, number="+33612345680", now=T0, reason="STOP")
    payload = {"channel": "sms", "body": "Order ready, {{ record.name }}: https://shop.example.com/o/1"}
    # the first send to this number is refused by the provider: the number bounced
    env.twilio.fail_next(400, code=21614, message="'To' number is not a valid mobile number")
    step, ids = campaign_with_action(
        env.db,
        [{"name": "Bounced", "mobile": "+33612345681"}, {"name": "Opted", "mobile": "+33612345680"}],
        payload,
    )
    env.tick(T0)
    by_res = {t.res_id: t for t in env.traces_of(step)}
    assert by_res[ids[0]].state == "error"
    assert "not a valid mobile number" in (by_res[ids[0]].state_message or "")
    # opted out of marketing SMS (phone blacklist): the transactional SMS still goes
    assert by_res[ids[1]].state == "processed"
    (sent,) = env.twilio.messages.values()
    assert sent.to == "+33612345680"
    assert sent.body == "Order ready, Opted: https://shop.example.com/o/1"  # no tracking, no opt-out text
    rows = env.messages()
    assert [(r.to_number, r.state, r.transactional) for r in rows] == [
        ("+33612345681", "failed", True),
        ("+33612345680", "sent", True),
    ]

    # a second campaign (enrolling every contact): the bounced number is skipped
    step2, again = campaign_with_action(env.db, [{"name": "Bounced again", "mobile": "+33612345681"}], payload)
    env.tick(T0 + HOUR)
    traces = {t.res_id: t for t in env.traces_of(step2)}
    for res_id in (ids[0], again[0]):
        assert (traces[res_id].state, traces[res_id].state_message) == ("canceled", "Not sent: number bounced")
    assert traces[ids[1]].state == "processed"
    assert sorted(m.to for m in env.twilio.messages.values()) == ["+33612345680", "+33612345680"]


def test_transactional_email_ignores_opt_out_but_not_hard_bounces(outbox_env: Env) -> None:
    env = outbox_env
    with env.db.transaction() as s:
        blacklists.blacklist_email(session=s, email="opted@example.com", now=T0, reason="Unsubscribed")
        blacklists.blacklist_email(
            session=s, email="bounced@example.com", now=T0, reason=AUTO_BLACKLIST_REASON, source="bounce"
        )
    payload = {
        "channel": "email",
        "subject": "Your order, {{ record.name }}",
        "html": '<p>Thanks {{ record.name }}</p><p><a href="https://shop.example.com/o/1">Order</a></p>',
        "from_addr": "Shop <shop@example.com>",
    }
    step, ids = campaign_with_action(
        env.db,
        [
            {"name": "Opted", "email": "opted@example.com"},
            {"name": "Bounced", "email": "bounced@example.com"},
            {"name": "Nobody"},
        ],
        payload,
    )
    env.tick(T0)
    by_res = {t.res_id: t for t in env.traces_of(step)}
    assert by_res[ids[0]].state == "processed"
    assert (by_res[ids[1]].state, by_res[ids[1]].state_message) == ("canceled", "Not sent: address hard-bounced")
    assert by_res[ids[2]].state == "canceled"
    with env.db.read() as s:
        rows = s.execute(select(MailMessage.email, MailMessage.state, MailMessage.subject, MailMessage.raw)).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [("opted@example.com", "sent", "Your order, Opted")]
    raw = rows[0][3]
    assert raw is not None
    assert b"List-Unsubscribe" not in raw and b"/t/o/" not in raw and b"/t/c/" not in raw
    assert b"https://shop.example.com/o/1" in raw
    assert b"shop@example.com" in raw


def test_transactional_payload_is_validated() -> None:
    with pytest.raises(ValidationError) as exc:
        validate_action("contact", "transactional", {"channel": "email", "subject": "Hi {{ record.nope }}"})
    assert exc.value.field == "subject"
    with pytest.raises(ValidationError) as exc:
        validate_action("contact", "transactional", {"channel": "sms", "body": "{{ record.nope }}"})
    assert exc.value.field == "body"
    with pytest.raises(ValidationError) as exc:
        validate_action("contact", "transactional", {"channel": "fax"})
    assert exc.value.field == "channel"
    ok = validate_action("contact", "transactional", {"channel": "sms", "body": "Hi {{ record.name }}"})
    assert ok == {"channel": "sms", "body": "Hi {{ record.name }}"}


def test_transactional_email_refused_by_smtp_fails_its_trace_without_a_bounce_event(
    db: Database, tmp_path: Path
) -> None:
    from aiosmtpd.controller import Controller

    from tests.channels.email.smtp_sink import Sink, free_port

    from .conftest import _make_env

    sink = Sink(rcpt_answers=["550 5.1.1 No such user"])
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        env_iter = _make_env(db, tmp_path, {"NURTURE_SMTP_URL": f"smtp://127.0.0.1:{port}"}, None)
        env = next(env_iter)
        try:
            payload = {"channel": "email", "subject": "Receipt", "html": "<p>Thanks</p>"}
            step, ids = campaign_with_action(
                env.db, [{"name": "Gone", "email": "gone@example.com"}, {"name": "Here", "email": "here@example.com"}], payload
            )
            env.tick(T0)
            by_res = {t.res_id: t for t in env.traces_of(step)}
            # the refused message fails only its own trace; the other one is delivered
            assert by_res[ids[0]].state == "error"
            assert "No such user" in (by_res[ids[0]].state_message or "")
            assert by_res[ids[1]].state == "processed"
            with env.db.read() as s:
                states = dict(s.execute(select(MailMessage.email, MailMessage.state)).all())
            assert states == {"gone@example.com": "failed", "here@example.com": "sent"}
            assert [r.rcpt_tos for r in sink.received] == [["here@example.com"]]
        finally:
            env_iter.close()
    finally:
        controller.stop()
