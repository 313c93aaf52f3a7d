"""A running campaign sends through a real SMTP server; tracking, replies, bounces and
unsubscribes come back as engine events (SQLite and PostgreSQL)."""

from __future__ import annotations

import smtplib
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import func, select

from nurture.channels.email.inbound_smtp import start_listener
from nurture.channels.email.models import LinkClick, MailOpen, MailUnsubscribe, TrackedLink
from nurture.channels.email.receive import handle_inbound
from nurture.cli import cli
from nurture.engine.models import Trace
from nurture.records import blacklists, mailing_lists
from nurture.tracking.tokens import message_token
from nurture.worker.loop import tick

from ..smtp_sink import free_port
from .conftest import (
    BASE_URL,
    HOUR,
    HUMAN_UA,
    MAIL_DOMAIN,
    T0,
    Env,
    campaign_with_email,
    corpus,
    links_of,
    path_of,
)


def _states(env: Env, activity_id: int) -> list[str]:
    with env.db.read() as s:
        return list(
            s.scalars(select(Trace.state).where(Trace.activity_id == activity_id).order_by(Trace.id))
        )


def _count(env: Env, model: object) -> int:
    with env.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def _mail_trace(env: Env, mail: int) -> Trace:
    with env.db.read() as s:
        trace = s.scalars(select(Trace).where(Trace.activity_id == mail)).one()
        s.expunge(trace)
        return trace


def test_campaign_sends_tracks_opens_and_clicks(env: Env) -> None:
    cid, mail, kids, _ = campaign_with_email(env.db, [{"name": "Alice Martin", "email": "Alice@Example.org"}])
    tick(env.db, now=T0)
    assert _states(env, mail) == ["processed"]
    trace = _mail_trace(env, mail)
    assert trace.sent_at == T0

    # the message on the wire
    (received,) = env.sink.received
    token = message_token(_signer(env), trace.id)
    assert received.mail_from == f"bounce+{token}@{MAIL_DOMAIN}"  # VERP return path
    assert received.rcpt_tos == ["Alice@Example.org"]
    (msg,) = env.messages()
    assert msg["Subject"] == "Hello Alice Martin"
    assert msg["Message-ID"] == f"<{token}@{MAIL_DOMAIN}>"
    assert msg["From"] == "Acme News <news@acme.test>"
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    unsub = msg["List-Unsubscribe"]
    assert f"<{BASE_URL}/unsubscribe/" in unsub and "<mailto:unsubscribe+" in unsub
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Precedence"] == "bulk"
    text = msg.get_body(preferencelist=("plain",))
    assert text is not None and "Hello Alice Martin" in str(text.get_content())

    urls = links_of(msg)
    pixel = next(u for u in urls if "/t/o/" in u)
    click = next(u for u in urls if "/t/c/" in u)
    assert not any("shop.example.com" in u for u in urls)  # every link is tracked
    (row,) = env.mail_rows()
    assert row.state == "sent" and row.attempts == 1 and row.email == "alice@example.org"

    # open pixel: a GIF, not cached; the open child waits for the next tick
    env.at(T0 + HOUR)
    response = env.client.get(path_of(pixel), headers={"User-Agent": HUMAN_UA})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert "no-store" in response.headers["cache-control"]
    assert _mail_trace(env, mail).opened_at == T0 + HOUR
    # the click redirects to the stored URL (with UTM) only
    env.at(T0 + 2 * HOUR)
    response = env.client.get(path_of(click), headers={"User-Agent": HUMAN_UA})
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("https://shop.example.com/offer?")
    assert "utm_campaign=Spring" in location and "utm_medium=email" in location
    with env.db.read() as s:
        assert s.scalar(select(TrackedLink.url)) == location
        hit = s.scalars(select(LinkClick)).one()
        assert hit.user_agent == HUMAN_UA and not hit.machine and hit.fired
    assert _mail_trace(env, mail).clicked_at == T0 + 2 * HOUR

    tick(env.db, now=T0 + 2 * HOUR)
    assert _states(env, kids["mail_open"]) == ["processed"]
    assert _states(env, kids["mail_click"]) == ["processed"]
    assert _states(env, kids["mail_reply"]) == ["scheduled"]
    assert _states(env, kids["mail_bounce"]) == ["scheduled"]


def _signer(env: Env):  # type: ignore[no-untyped-def]
    from nurture.tracking.tokens import TokenSigner

    return TokenSigner.from_settings(env.settings)


def test_machine_open_is_recorded_but_does_not_fire(env: Env) -> None:
    _, mail, kids, _ = campaign_with_email(env.db, [{"name": "Bob", "email": "bob@example.org"}])
    tick(env.db, now=T0)
    pixel = next(u for u in links_of(env.messages()[0]) if "/t/o/" in u)
    env.at(T0 + HOUR)
    # Apple Mail Privacy Protection prefetch: bare Mozilla/5.0
    assert env.client.get(path_of(pixel), headers={"User-Agent": "Mozilla/5.0"}).status_code == 200
    with env.db.read() as s:
        hit = s.scalars(select(MailOpen)).one()
        assert hit.machine and not hit.fired
    assert _mail_trace(env, mail).opened_at is None
    tick(env.db, now=T0 + HOUR)
    assert _states(env, kids["mail_open"]) == ["scheduled"]


def test_forged_tokens_change_nothing(env: Env) -> None:
    _, mail, kids, _ = campaign_with_email(env.db, [{"name": "Carol", "email": "carol@example.org"}])
    tick(env.db, now=T0)
    urls = links_of(env.messages()[0])
    pixel = path_of(next(u for u in urls if "/t/o/" in u))
    click = path_of(next(u for u in urls if "/t/c/" in u))
    unsub = path_of(next(u for u in urls if "/unsubscribe/" in u))

    def tamper(path: str) -> str:
        head, _, token = path.rpartition("/")
        suffix = ".gif" if token.endswith(".gif") else ""
        token = token.removesuffix(".gif")
        flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
        return f"{head}/{flipped}{suffix}"

    for path in (pixel, click, unsub):
        assert env.client.get(tamper(path), headers={"User-Agent": HUMAN_UA}).status_code == 404
    assert env.client.post(tamper(unsub), content="List-Unsubscribe=One-Click").status_code == 404
    assert env.client.get("/t/c/not-a-token").status_code == 404
    assert _count(env, MailOpen) == 0 and _count(env, LinkClick) == 0
    assert _count(env, MailUnsubscribe) == 0
    trace = _mail_trace(env, mail)
    assert trace.opened_at is None and trace.clicked_at is None
    tick(env.db, now=T0 + HOUR)
    assert _states(env, kids["mail_open"]) == ["scheduled"]


def test_reply_and_auto_reply_through_the_pipe_command(env: Env) -> None:
    _, mail, kids, _ = campaign_with_email(env.db, [{"name": "Dan", "email": "dan@example.org"}])
    tick(env.db, now=T0)
    trace = _mail_trace(env, mail)
    token = message_token(_signer(env), trace.id)
    runner = CliRunner()

    auto = runner.invoke(cli, ["inbound"], input=corpus("outlook_automatic_reply.eml", token), env=env.environ)
    assert auto.exit_code == 0, auto.output
    assert _mail_trace(env, mail).replied_at is None  # a vacation notice is not a reply

    reply = runner.invoke(cli, ["inbound"], input=corpus("human_reply.eml", token), env=env.environ)
    assert reply.exit_code == 0, reply.output
    replied = _mail_trace(env, mail)
    assert replied.replied_at is not None and replied.opened_at is not None  # reply implies open
    tick(env.db, now=replied.replied_at + timedelta(seconds=1))
    assert _states(env, kids["mail_reply"]) == ["processed"]
    assert _states(env, kids["mail_open"]) == ["processed"]


def test_bounce_through_the_pipe_command_runs_bounce_children(env: Env) -> None:
    _, mail, kids, _ = campaign_with_email(env.db, [{"name": "Eve", "email": "eve@example.org"}])
    tick(env.db, now=T0)
    trace = _mail_trace(env, mail)
    token = message_token(_signer(env), trace.id)
    result = CliRunner().invoke(cli, ["inbound"], input=corpus("gmail_dsn.eml", token), env=env.environ)
    assert result.exit_code == 0, result.output
    bounced = _mail_trace(env, mail)
    assert bounced.bounced_at is not None and bounced.failure_reason == "mail_bounce_hard"
    tick(env.db, now=bounced.bounced_at + timedelta(seconds=1))
    assert _states(env, kids["mail_bounce"]) == ["processed"]
    assert _states(env, kids["mail_open"]) == ["canceled"]
    assert _states(env, kids["mail_reply"]) == ["canceled"]


def test_reply_and_bounce_through_the_smtp_listener(env: Env) -> None:
    _, mail, kids, _ = campaign_with_email(
        env.db, [{"name": "Fay", "email": "fay@example.org"}, {"name": "Gus", "email": "gus@example.org"}]
    )
    tick(env.db, now=T0)
    with env.db.read() as s:
        fay, gus = s.scalars(select(Trace.id).where(Trace.activity_id == mail).order_by(Trace.id)).all()
    signer = _signer(env)
    port = free_port()
    listener = start_listener(
        lambda item: handle_inbound(env.db, item.raw, now=T0 + HOUR) and None,
        host="127.0.0.1", port=port, accept_domains=[MAIL_DOMAIN],
    )
    try:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            fay_id = f"<{message_token(signer, fay)}@{MAIL_DOMAIN}>"
            reply = (
                "From: Fay <fay@example.org>\r\nTo: news@acme.test\r\nSubject: Re: Hello Fay\r\n"
                f"Message-ID: <r1@example.org>\r\nIn-Reply-To: {fay_id}\r\nReferences: {fay_id}\r\n"
                "\r\nYes please, tell me more.\r\n"
            )
            smtp.sendmail("fay@example.org", [f"news@{MAIL_DOMAIN}"], reply.encode())
            bounce_to = f"bounce+{message_token(signer, gus)}@{MAIL_DOMAIN}"
            dsn = (
                "From: MAILER-DAEMON@mx.example.org\r\n"
                f"To: {bounce_to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
                "MIME-Version: 1.0\r\n"
                'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
                "--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
                "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
                "Reporting-MTA: dns; mx.example.org\r\n\r\n"
                "Final-Recipient: rfc822; gus@example.org\r\nAction: failed\r\n"
                "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
                "--b--\r\n"
            )
            smtp.sendmail("", [bounce_to], dsn.encode())
    finally:
        listener.stop()
    tick(env.db, now=T0 + HOUR)
    assert _states(env, kids["mail_reply"]) == ["processed", "canceled"]
    assert _states(env, kids["mail_bounce"]) == ["scheduled", "processed"]


def test_pipe_command_exits_75_when_the_database_is_down(env: Env) -> None:
    _, mail, _, _ = campaign_with_email(env.db, [{"name": "Hal", "email": "hal@example.org"}])
    tick(env.db, now=T0)
    token = message_token(_signer(env), _mail_trace(env, mail).id)
    down = dict(env.environ, NURTURE_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(cli, ["inbound"], input=corpus("human_reply.eml", token), env=down)
    assert result.exit_code == 75, result.output


def test_unsubscribe_page_and_one_click(env: Env) -> None:
    _, mail, _, _ = campaign_with_email(
        env.db, [{"name": "Ida", "email": "ida@example.org"}, {"name": "Jo", "email": "jo@example.org"}]
    )
    tick(env.db, now=T0)
    ida_msg, jo_msg = env.messages()
    ida_unsub = path_of(next(u for u in links_of(ida_msg) if "/unsubscribe/" in u))
    page = env.client.get(ida_unsub)
    assert page.status_code == 200 and "ida@example.org" in page.text and "all marketing" in page.text
    done = env.client.post(
        ida_unsub, data={"reason": "The emails are too frequent", "blacklist": "1"}
    )
    assert done.status_code == 200
    # RFC 8058 one-click: the List-Unsubscribe URL, POSTed by the mailbox provider, no session
    jo_url = jo_msg["List-Unsubscribe"].split(",")[0].strip().strip("<>")
    one = env.client.post(
        path_of(jo_url), content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one.status_code == 200
    again = env.client.post(path_of(jo_url), files={"List-Unsubscribe": (None, "One-Click")})
    assert again.status_code == 200  # multipart/form-data, as some providers send it
    with env.db.read() as s:
        assert blacklists.is_email_blacklisted(session=s, email="ida@example.org")
        assert blacklists.is_email_blacklisted(session=s, email="jo@example.org")
        rows = list(s.scalars(select(MailUnsubscribe).order_by(MailUnsubscribe.id)))
        assert [(u.email, u.one_click, u.blacklisted) for u in rows] == [
            ("ida@example.org", False, True),
            ("jo@example.org", True, True),
            ("jo@example.org", True, True),
        ]
        assert rows[0].reason == "The emails are too frequent"
    # the unsubscribe link never counted as a click
    assert _count(env, LinkClick) == 0


def test_reply_through_imap_polling(env: Env) -> None:
    from ..fake_imap import FakeImapServer

    _, mail, kids, _ = campaign_with_email(env.db, [{"name": "Kai", "email": "kai@example.org"}])
    tick(env.db, now=T0)
    token = message_token(_signer(env), _mail_trace(env, mail).id)
    with FakeImapServer() as imap:
        imap.mailbox.add(corpus("human_reply.eml", token))
        imap.mailbox.add(corpus("outlook_automatic_reply.eml", token))
        url = f"imap://robot:p%40ss%20%22word%22@127.0.0.1:{imap.port}/INBOX"
        result = CliRunner().invoke(
            cli, ["inbound-imap", "--once"], env=dict(env.environ, NURTURE_IMAP_URL=url)
        )
        assert result.exit_code == 0, result.output
        assert imap.mailbox.messages == {}  # handled and expunged
    replied = _mail_trace(env, mail)
    assert replied.replied_at is not None
    tick(env.db, now=replied.replied_at + timedelta(seconds=1))
    assert _states(env, kids["mail_reply"]) == ["processed"]


def test_unsubscribe_from_the_target_list_opts_out_without_blacklisting(env: Env) -> None:
    from nurture.records.models import MailingContact, MailingSubscription

    with env.db.transaction() as s:
        list_id = mailing_lists.get_or_create_mailing_list(session=s, name="Newsletter", now=T0)
    campaign_with_email(env.db, [{"name": "Lia", "email": "lia@example.org"}], mailing_list_id=list_id)
    tick(env.db, now=T0)
    unsub = path_of(next(u for u in links_of(env.messages()[0]) if "/unsubscribe/" in u))
    assert env.client.post(unsub, data={"reason": "Other"}).status_code == 200
    with env.db.read() as s:
        assert not blacklists.is_email_blacklisted(session=s, email="lia@example.org")
        contact = s.scalars(select(MailingContact).where(MailingContact.email == "lia@example.org")).one()
        sub = s.scalars(select(MailingSubscription).where(MailingSubscription.contact_id == contact.id)).one()
        assert sub.list_id == list_id and sub.opted_out
