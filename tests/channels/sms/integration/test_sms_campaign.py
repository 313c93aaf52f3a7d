"""The SMS channel through the engine: ``nurture tick`` sends, callbacks and clicks come back."""

from __future__ import annotations

import re

from sqlalchemy import select

from nurture.channels.email.models import LinkClick, TrackedLink
from nurture.channels.queue import MSG_UNKNOWN
from nurture.channels.sms import delivery
from nurture.channels.sms.models import SmsMessage
from nurture.channels.sms.providers import twilio_signature
from nurture.engine.enrol import sync_campaigns
from nurture.records import blacklists
from nurture.worker.loop import drain

from .conftest import BASE_URL, HOUR, HUMAN_UA, T0, Env, campaign_with_sms, tags_of

FR_MOBILE = "06 12 34 56 78"
FR_E164 = "+33612345678"


def test_sms_sent_through_http_provider_and_failed_status_bounces(env: Env) -> None:
    _, sms, kids, (cid,) = campaign_with_sms(
        env.db, [{"name": "Ana", "mobile": FR_MOBILE, "country_code": "FR"}], opt_out=True
    )
    out = env.tick(T0)
    assert "processed 1" in out
    assert env.twilio is not None
    (sent,) = env.twilio.messages.values()
    assert sent.to == FR_E164
    assert sent.sender == "+15005550006"
    assert sent.body.startswith("Hi Ana, our offer: " + BASE_URL + "/t/s/")
    assert sent.body.endswith("\nReply STOP to opt out")
    assert "shop.example.com" not in sent.body
    (row,) = env.messages()
    assert row.state == "sent" and row.provider == "http" and row.provider_id == sent.sid
    assert row.to_number == FR_E164 and row.attempts == 1 and row.segments == 1
    (trace,) = env.traces_of(sms)
    assert trace.state == "processed" and trace.sent_at == T0
    # bounce child waits for the event
    (bounce_child,) = env.traces_of(kids["sms_bounce"])
    assert bounce_child.schedule_date is None

    # a forged callback changes nothing
    assert env.post_status(sent.sid, "failed", forge=True) == 403
    assert env.trace(trace.id).bounced_at is None

    env.at(T0 + HOUR)
    assert env.post_status(sent.sid, "failed", error_code="30003") == 204
    assert env.trace(trace.id).bounced_at == T0 + HOUR
    assert (env.messages()[0].state, env.messages()[0].failure_reason) == ("failed", "provider reported failed (error 30003)")
    # the click child is canceled by the bounce; the bounce child runs on the next tick
    (click_child,) = env.traces_of(kids["sms_click"])
    assert click_child.state == "canceled"
    env.tick(T0 + HOUR)
    assert env.trace(env.traces_of(kids["sms_bounce"])[0].id).state == "processed"
    assert tags_of(env.db, cid) == {"sms_bounce"}
    # repeated callbacks change nothing
    assert env.post_status(sent.sid, "undelivered") == 204
    assert env.trace(trace.id).bounced_at == T0 + HOUR


def test_delivered_status_stamps_delivered(env: Env) -> None:
    _, sms, kids, _ = campaign_with_sms(env.db, [{"name": "Bo", "mobile": "+447911123456"}])
    env.tick(T0)
    assert env.twilio is not None
    (sent,) = env.twilio.messages.values()
    env.at(T0 + HOUR)
    assert env.post_status(sent.sid, "delivered") == 204
    assert env.messages()[0].delivered_at == T0 + HOUR
    (bounce_child,) = env.traces_of(kids["sms_bounce"])
    assert bounce_child.state == "scheduled" and bounce_child.schedule_date is None
    # a callback for another trace's token is refused
    (trace,) = env.traces_of(sms)
    assert env.client.post("/t/sms/status/not-a-token", content="MessageSid=x").status_code == 404


def test_sms_click_through_tracked_link(env: Env) -> None:
    _, sms, kids, (cid,) = campaign_with_sms(env.db, [{"name": "Cy", "mobile": "+33612345679"}])
    env.tick(T0)
    assert env.twilio is not None
    (sent,) = env.twilio.messages.values()
    (link,) = re.findall(re.escape(BASE_URL) + r"(/t/s/[A-Za-z0-9_-]+)", sent.body)
    # an altered token is refused and records nothing
    assert env.client.get(link[:-2] + "xx", headers={"User-Agent": HUMAN_UA}).status_code == 404
    env.at(T0 + HOUR)
    response = env.client.get(link, headers={"User-Agent": HUMAN_UA})
    assert response.status_code == 302
    assert response.headers["location"].startswith("https://shop.example.com/offer")
    (trace,) = env.traces_of(sms)
    assert env.trace(trace.id).clicked_at == T0 + HOUR
    with env.db.read() as s:
        clicks = s.execute(select(LinkClick.trace_id, LinkClick.fired)).all()
        stored = s.scalar(select(TrackedLink.url))
    assert [tuple(c) for c in clicks] == [(trace.id, True)]
    assert stored is not None and stored.startswith("https://shop.example.com/offer")
    env.tick(T0 + HOUR)
    assert tags_of(env.db, cid) == {"sms_click"}
    (bounce_child,) = env.traces_of(kids["sms_bounce"])
    assert bounce_child.state == "scheduled"


def test_invalid_missing_and_blacklisted_numbers_are_canceled(env: Env) -> None:
    with env.db.transaction() as s:
        blacklists.blacklist_phone(session=s, number="+33612345670", now=T0, reason="STOP")
    _, sms, _, ids = campaign_with_sms(
        env.db,
        [
            {"name": "bad", "mobile": "12"},
            {"name": "none"},
            {"name": "black", "mobile": "06 12 34 56 70", "country_code": "FR"},
            {"name": "ok", "phone": "+33612345671"},
        ],
    )
    env.tick(T0)
    by_res = {t.res_id: t for t in env.traces_of(sms)}
    assert (by_res[ids[0]].state, by_res[ids[0]].state_message) == ("canceled", "invalid number")
    assert (by_res[ids[1]].state, by_res[ids[1]].state_message) == ("canceled", "no phone number")
    assert (by_res[ids[2]].state, by_res[ids[2]].state_message) == ("canceled", "blacklisted")
    assert by_res[ids[2]].failure_reason == "sms_blacklist"
    assert by_res[ids[3]].state == "processed"
    assert [m.to_number for m in env.messages()] == ["+33612345671"]
    assert env.twilio is not None and len(env.twilio.messages) == 1


def test_429_is_retried_and_sent_once(env: Env) -> None:
    assert env.twilio is not None
    env.twilio.fail_next(429, code=20429, retry_after="0", times=1)
    _, sms, _, _ = campaign_with_sms(env.db, [{"name": "Di", "mobile": "+33612345672"}])
    env.tick(T0)
    assert len(env.twilio.messages) == 1
    assert len(env.twilio.requests) == 2
    (row,) = env.messages()
    assert row.state == "sent"


def test_429_beyond_provider_retries_requeues_with_backoff(env: Env) -> None:
    assert env.twilio is not None
    env.twilio.fail_next(429, code=20429, retry_after="0", times=4)
    _, sms, _, _ = campaign_with_sms(env.db, [{"name": "Ed", "mobile": "+33612345673"}])
    env.tick(T0)
    (row,) = env.messages()
    assert row.state == "queued" and row.attempts == 1
    assert row.next_attempt_at == T0 + delivery.retry_delay(1)
    assert "Too Many Requests" in (row.failure_reason or "")
    env.tick(T0 + delivery.retry_delay(1))
    (row,) = env.messages()
    assert row.state == "sent" and row.attempts == 2
    assert len(env.twilio.messages) == 1


def test_permanent_4xx_fails_message_and_bounces(env: Env) -> None:
    assert env.twilio is not None
    env.twilio.fail_next(400, code=21610, message="Attempt to send to unsubscribed recipient")
    _, sms, kids, (cid,) = campaign_with_sms(env.db, [{"name": "Fi", "mobile": "+33612345674"}])
    env.tick(T0)
    (row,) = env.messages()
    assert row.state == "failed"
    assert row.failure_reason == "Attempt to send to unsubscribed recipient (error 21610)"
    (trace,) = env.traces_of(sms)
    assert trace.state == "error" and trace.bounced_at == T0
    assert "unsubscribed recipient" in (trace.state_message or "")
    # the bounce child ran in the same tick (send-time bounces re-drain)
    assert tags_of(env.db, cid) == {"sms_bounce"}


def test_outbox_provider_is_the_default(outbox_env: Env) -> None:
    env = outbox_env
    _, sms, _, _ = campaign_with_sms(env.db, [{"name": "Gus", "mobile": "+33612345675"}])
    env.tick(T0)
    (row,) = env.messages()
    assert row.state == "sent" and row.provider == "outbox"
    assert row.provider_id and row.provider_id.startswith("outbox-")
    assert row.body.startswith("Hi Gus, our offer: " + BASE_URL + "/t/s/")
    (trace,) = env.traces_of(sms)
    assert trace.state == "processed" and trace.sent_at == T0
    # without an http provider, no status callback is accepted
    assert env.client.post("/t/sms/status/x", content="").status_code == 404


def test_sms_never_sent_twice_when_ticked_again(env: Env) -> None:
    _, sms, _, _ = campaign_with_sms(env.db, [{"name": "Hal", "mobile": "+33612345676"}])
    env.tick(T0)
    env.tick(T0 + HOUR)
    env.tick(T0 + 2 * HOUR)
    assert env.twilio is not None and len(env.twilio.messages) == 1
    with env.db.read() as s:
        assert len(list(s.scalars(select(SmsMessage.id)))) == 1


def test_callback_for_another_message_is_refused(env: Env) -> None:
    _, sms, _, _ = campaign_with_sms(
        env.db, [{"name": "Ivy", "mobile": "+33612345677"}, {"name": "Jo", "mobile": "+33612345678"}]
    )
    env.tick(T0)
    assert env.twilio is not None
    first, second = env.twilio.messages.values()
    # correctly signed, but the MessageSid is not the message of the trace in the URL
    form = env.twilio.callback_form(second.sid, "failed")
    form["MessageSid"] = form["SmsSid"] = first.sid
    assert second.status_callback is not None
    signature = twilio_signature(second.status_callback, form, env.twilio.auth_token)
    response = env.client.post(
        second.status_callback[len(BASE_URL):],
        data=form,
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 403
    assert all(t.bounced_at is None for t in env.traces_of(sms))


def test_interrupted_send_is_never_resent(env: Env) -> None:
    _, sms, _, _ = campaign_with_sms(env.db, [{"name": "Kim", "mobile": "+33612345679"}])
    # the executor queued the message; a worker claimed it and crashed while sending
    sync_campaigns(env.db, now=T0, full=True)
    drain(env.db, now=T0, worker_id="w1")
    with env.db.transaction() as s:
        claimed = delivery.claim(s, now=T0, limit=10, token="crashed", lease=delivery.DEFAULT_LEASE)
    assert len(claimed) == 1
    env.tick(T0 + 2 * delivery.DEFAULT_LEASE)
    (row,) = env.messages()
    assert row.state == "failed" and row.failure_reason == MSG_UNKNOWN
    assert env.twilio is not None and env.twilio.messages == {}
    (trace,) = env.traces_of(sms)
    assert trace.failure_reason == "sms_unknown"
