"""Not-sent reasons, retries and permanent failures over real SMTP, crash recovery,
the database outbox, templates at save time (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from nurture.channels.delivery import BackgroundDelivery
from nurture.channels.email import delivery
from nurture.channels.email import service as email_service
from nurture.channels.email.bounces import apply_auto_blacklist
from nurture.channels.email.models import MailMessage
from nurture.engine.enrol import sync_campaigns
from nurture.engine.execute import run_due
from nurture.engine.models import Trace
from nurture.errors import Conflict
from nurture.records import blacklists, mailing_lists
from nurture.records.models import MailingContact
from nurture.templating import TemplateValidationError
from nurture.tracking.tokens import TokenSigner
from nurture.tracking.urls import view_url
from nurture.worker.loop import tick

from .conftest import HOUR, T0, Env, campaign_with_email


def _traces(env: Env, activity_id: int) -> list[Trace]:
    with env.db.read() as s:
        rows = list(s.scalars(select(Trace).where(Trace.activity_id == activity_id).order_by(Trace.id)))
        s.expunge_all()
        return rows


def test_not_sent_reasons_cancel_traces(env: Env) -> None:
    with env.db.transaction() as s:
        blacklists.blacklist_email(session=s, email="Black@Example.org", now=T0, reason="asked")
        list_id = mailing_lists.get_or_create_mailing_list(session=s, name="Newsletter", now=T0)
        mc = MailingContact(name="Out", email="out@example.org", created_at=T0, updated_at=T0)
        s.add(mc)
        s.flush()
        mailing_lists.opt_out(session=s, contact_id=mc.id, list_id=list_id, now=T0)
    _, mail, _, ids = campaign_with_email(
        env.db,
        [
            {"name": "Ok", "email": "ok@example.org"},
            {"name": "Black", "email": "black@example.org"},
            {"name": "Out", "email": "OUT@example.org"},
            {"name": "Invalid", "email": "not-an-address"},
            {"name": "Missing", "email": None},
            {"name": "Dup one", "email": "dup@example.org"},
            {"name": "Dup two", "email": "Dup@Example.org"},
        ],
        mailing_list_id=list_id,
    )
    tick(env.db, now=T0)
    got = {t.res_id: (t.state, t.state_message, t.failure_reason) for t in _traces(env, mail)}
    assert got[ids[0]] == ("processed", None, None)
    assert got[ids[1]] == ("canceled", email_service.MSG_BLACKLISTED, "mail_bl")
    assert got[ids[2]] == ("canceled", email_service.MSG_OPTOUT, "mail_optout")
    assert got[ids[3]] == ("canceled", email_service.MSG_INVALID, "mail_email_invalid")
    assert got[ids[4]] == ("canceled", email_service.MSG_MISSING, "mail_email_missing")
    assert got[ids[5]][0] == "processed"
    assert got[ids[6]] == ("canceled", email_service.MSG_DUPLICATE, "mail_dup")
    assert sorted(r.rcpt_tos[0] for r in env.sink.received) == ["dup@example.org", "ok@example.org"]


def test_temporary_failure_retries_with_backoff(env: Env) -> None:
    env.sink.rcpt_answers.append("451 4.3.0 Try again later")
    _, mail, kids, _ = campaign_with_email(env.db, [{"name": "Kim", "email": "kim@example.org"}])
    tick(env.db, now=T0)
    (row,) = env.mail_rows()
    assert row.state == "queued" and row.attempts == 1
    assert row.next_attempt_at is not None and row.next_attempt_at > T0
    assert "451" in (row.failure_reason or "")
    assert env.sink.received == []
    tick(env.db, now=T0 + timedelta(seconds=10))  # before the backoff: nothing
    assert env.mail_rows()[0].attempts == 1
    tick(env.db, now=T0 + HOUR)
    (row,) = env.mail_rows()
    assert row.state == "sent" and row.attempts == 2
    assert len(env.sink.received) == 1
    (trace,) = _traces(env, mail)
    assert trace.state == "processed" and trace.sent_at == T0 + HOUR


def test_permanent_failure_marks_trace_error_and_counts_as_bounce(env: Env) -> None:
    env.sink.rcpt_answers.append("550 5.1.1 No such user here")
    _, mail, kids, _ = campaign_with_email(env.db, [{"name": "Lou", "email": "lou@example.org"}])
    tick(env.db, now=T0)
    (row,) = env.mail_rows()
    assert row.state == "failed" and row.failure_type == "mail_smtp" and "550" in (row.failure_reason or "")
    (trace,) = _traces(env, mail)
    assert trace.state == "error" and "550" in (trace.state_message or "")
    assert trace.bounced_at == T0
    assert [t.state for t in _traces(env, kids["mail_bounce"])] == ["processed"]  # same tick
    assert [t.state for t in _traces(env, kids["mail_open"])] == ["canceled"]
    assert env.sink.received == []


def test_crash_between_send_and_mark_never_sends_twice(env: Env) -> None:
    _, mail, _, _ = campaign_with_email(env.db, [{"name": "Max", "email": "max@example.org"}])
    sync_campaigns(env.db, now=T0, full=True)
    run_due(env.db, now=T0, worker_id="w1")  # queued, not delivered yet
    (row,) = env.mail_rows()
    assert row.state == "queued"
    # a worker claims it, hands it to SMTP, and dies before recording the outcome
    with env.db.transaction() as s:
        (claimed,) = delivery.claim(s, now=T0, limit=10, token="w1:dead", lease=delivery.DEFAULT_LEASE)
    transport = delivery.default_transport()
    transport.send(claimed.raw, envelope_from=claimed.envelope_from, recipients=[claimed.recipient])
    assert len(env.sink.received) == 1
    # another worker, before the lease ends: nothing to do; after: failed, not resent
    assert delivery.deliver_due(env.db, now=T0 + delivery.DEFAULT_LEASE / 2).unknown == 0
    result = delivery.deliver_due(env.db, now=T0 + delivery.DEFAULT_LEASE + timedelta(seconds=1))
    assert result.unknown == 1 and result.claimed == 0
    (row,) = env.mail_rows()
    assert row.state == "failed" and row.failure_type == delivery.FAILURE_UNKNOWN
    assert len(env.sink.received) == 1
    tick(env.db, now=T0 + 2 * HOUR)
    assert len(env.sink.received) == 1


def test_outbox_transport_keeps_the_message_in_the_database(env: Env) -> None:
    _, mail, _, _ = campaign_with_email(env.db, [{"name": "Ned", "email": "ned@example.org"}])
    sync_campaigns(env.db, now=T0, full=True)
    run_due(env.db, now=T0, worker_id="w1")
    result = delivery.deliver_due(env.db, now=T0, transport=delivery.DatabaseOutbox())
    assert result.sent == 1
    (row,) = env.mail_rows()
    assert row.state == "sent" and row.raw and b"List-Unsubscribe-Post" in row.raw
    assert env.sink.received == []
    (trace,) = _traces(env, mail)
    assert trace.sent_at == T0
    # the web version is served from the stored source
    signer = TokenSigner.from_settings(env.settings)
    page = env.client.get(view_url("", signer, trace.id))
    assert page.status_code == 200 and "Hello Ned" in page.text


def test_a_second_run_of_the_executor_never_queues_twice(env: Env) -> None:
    _, mail, _, _ = campaign_with_email(env.db, [{"name": "Oz", "email": "oz@example.org"}])
    tick(env.db, now=T0)
    tick(env.db, now=T0 + HOUR)
    assert len(env.mail_rows()) == 1 and len(env.sink.received) == 1


def test_auto_blacklist_after_five_bounces_over_a_week(env: Env) -> None:
    _, mail, _, _ = campaign_with_email(env.db, [{"name": "Pat", "email": "pat@example.org"}])
    tick(env.db, now=T0)
    (trace,) = _traces(env, mail)
    with env.db.transaction() as s:
        # four earlier bounced messages to the same address, plus this one
        t = s.get(Trace, trace.id)
        assert t is not None
        t.bounced_at = T0 + timedelta(days=10)
        for i in range(4):
            clone = Trace(
                campaign_id=t.campaign_id, participant_id=t.participant_id, activity_id=t.activity_id,
                res_id=t.res_id, state="processed", created_at=T0, bounced_at=T0 + timedelta(days=i),
            )
            s.add(clone)
            s.flush()
            s.add(MailMessage(
                trace_id=clone.id, campaign_id=t.campaign_id, activity_id=t.activity_id,
                email="pat@example.org", recipient="pat@example.org", envelope_from="b@x",
                message_id="<m>", state="sent", created_at=T0, updated_at=T0,
            ))
        s.flush()
        assert apply_auto_blacklist(s, email="pat@example.org", now=T0 + timedelta(days=11))
    with env.db.read() as s:
        assert blacklists.is_email_blacklisted(session=s, email="pat@example.org")


def test_template_errors_are_reported_at_save_time(env: Env) -> None:
    campaign_with_email(env.db, [{"name": "Q", "email": "q@example.org"}], children=())
    with env.db.transaction() as s:
        from nurture.campaigns import activities as activity_service
        from nurture.campaigns import campaigns as cs

        cid = cs.create_campaign(session=s, now=T0, name="Other", model="contact", domain=None).id
        act = activity_service.add_activity(session=s, now=T0, campaign_id=cid, name="Mail", activity_type="email").id
        with pytest.raises(TemplateValidationError) as info:
            email_service.create_template(
                session=s, now=T0, activity_id=act, subject="Hi",
                body_html="<p>line one</p>\n<p>{{ record.nonexistent_field }}</p>",
            )
        assert info.value.line == 2 and info.value.column > 1
        with pytest.raises(TemplateValidationError):
            email_service.create_template(
                session=s, now=T0, activity_id=act, subject="Hi",
                body_html="{{ record.__class__.__init__.__globals__ }}",
            )
        first = email_service.create_template(
            session=s, now=T0, activity_id=act, subject="Same subject", body_html="<p>x</p>"
        )
        second_act = activity_service.add_activity(
            session=s, now=T0, campaign_id=cid, name="Mail 2", activity_type="email"
        ).id
        with pytest.raises(Conflict):
            email_service.create_template(
                session=s, now=T0, activity_id=second_act, subject="Same subject", body_html="<p>y</p>"
            )
        preview = email_service.preview_template(session=s, template_id=first.id)
        assert "x" in preview.html


def test_the_worker_loop_delivers_after_its_batches(env: Env) -> None:
    from nurture.worker.loop import Worker

    _, mail, _, _ = campaign_with_email(env.db, [{"name": "Rae", "email": "rae@example.org"}])
    worker = Worker(env.db, worker_id="test-worker", clock=lambda: T0)
    worker.cycle()
    assert [r.state for r in env.mail_rows()] == ["sent"]
    assert len(env.sink.received) == 1
    (trace,) = _traces(env, mail)
    assert trace.sent_at == T0


def test_mailto_unsubscribe_request(env: Env) -> None:
    from nurture.channels.email.receive import handle_inbound
    from nurture.tracking.tokens import KIND_UNSUBSCRIBE

    _, mail, _, _ = campaign_with_email(env.db, [{"name": "Sam", "email": "sam@example.org"}])
    tick(env.db, now=T0)
    (trace,) = _traces(env, mail)
    token = TokenSigner.from_settings(env.settings).sign(KIND_UNSUBSCRIBE, trace.id, encoding="mail")
    raw = (
        f"From: sam@example.org\r\nTo: unsubscribe+{token}@mail.nurture.test\r\n"
        "Subject: unsubscribe\r\nMessage-ID: <u1@example.org>\r\n\r\n\r\n"
    ).encode()
    handle_inbound(env.db, raw, now=T0 + HOUR)
    with env.db.read() as s:
        assert blacklists.is_email_blacklisted(session=s, email="sam@example.org")


def test_duplicating_a_campaign_copies_its_email_templates(env: Env) -> None:
    from nurture.campaigns import campaigns as cs

    cid, mail, _, _ = campaign_with_email(env.db, [{"name": "Tom", "email": "tom@example.org"}], children=())
    with env.db.transaction() as s:
        copy = cs.duplicate_campaign(session=s, now=T0, campaign_id=cid)
        (new_mail,) = [a for a in copy.activities if a.activity_type == "email"]
        original = email_service.template_for_activity(session=s, activity_id=mail)
        copied = email_service.template_for_activity(session=s, activity_id=new_mail.id)
        assert original is not None and copied is not None
        assert copied.subject == original.subject and copied.campaign_id == copy.id


def test_background_delivery_sends_each_message_once_while_batches_run(env: Env) -> None:
    people = [{"name": f"P{i}", "email": f"p{i}@example.org"} for i in range(7)]
    _, mail, _, _ = campaign_with_email(env.db, people)
    sync_campaigns(env.db, now=T0, full=True)
    with BackgroundDelivery(env.db, clock=lambda: T0, limit=3, channels=("email",)) as sender:
        while True:
            batch = run_due(env.db, now=T0, limit=2, worker_id="bg")
            sender.notify()
            if batch.claimed == 0:
                break
    assert sender.result.sent == 7
    assert [r.state for r in env.mail_rows()] == ["sent"] * 7
    assert sorted(r.rcpt_tos[0] for r in env.sink.received) == sorted(p["email"] for p in people)
    assert all(t.sent_at == T0 for t in _traces(env, mail))
