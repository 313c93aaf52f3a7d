"""Transports: SMTP against a real aiosmtpd server on loopback, the memory outbox, retries."""

from __future__ import annotations

import email
import email.policy
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from nurture.channels.email.mime import MessageSpec, Unsubscribe, build_message
from nurture.channels.email.transports import (
    MemoryOutbox,
    Outcome,
    SmtpTransport,
    parse_smtp_url,
    retry_delay,
    should_retry,
    transport_from_settings,
)
from nurture.config import ConfigError, load_settings
from nurture.tracking.tokens import TokenSigner, message_token

from .conftest import client_tls, server_tls
from .smtp_sink import Sink, free_port

SIGNER = TokenSigner("transport-test-secret-012345")


def outgoing(n: int = 1, to: str = "Jane Doe <jane@example.org>") -> tuple[bytes, str, list[str]]:
    token = message_token(SIGNER, n)
    out = build_message(
        MessageSpec(
            from_addr="Acme News <news@news.example.com>",
            to_addr=to,
            subject=f"Message n°{n}",
            html=f"<p>Hello {n} ✓</p>\n<p>.leading dot line</p>",
            text=f"Hello {n} ✓\n.leading dot line\n",
            token=token,
            domain="news.example.com",
            unsubscribe=Unsubscribe("https://news.example.com/u/x"),
        )
    )
    return out.raw, out.envelope_from, list(out.recipients)


# ------------------------------------------------------------------ server fixtures


ServerFactory = Callable[..., tuple[Sink, int]]


@pytest.fixture(params=[False, True], ids=["one-command-at-a-time", "pipelining"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[ServerFactory]:
    """Every SMTP test runs against a server without and with PIPELINING (RFC 2920)."""
    controllers: list[Controller] = []

    def start(sink: Sink | None = None, **kwargs: Any) -> tuple[Sink, int]:
        sink = sink or Sink()
        sink.pipelining = request.param
        port = free_port()
        controller = Controller(sink, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return sink, port

    yield start
    for controller in controllers:
        controller.stop()


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


# ------------------------------------------------------------------ SMTP


def test_delivers_and_reuses_one_connection(smtp_server: ServerFactory) -> None:
    sink, port = smtp_server()
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}?starttls=0")
    try:
        for n in range(1, 6):
            message, envelope_from, recipients = outgoing(n, to=f"user{n}@example.org")
            result = transport.send(message, envelope_from=envelope_from, recipients=recipients)
            assert result.outcome is Outcome.SENT, result
            assert result.code == 250
    finally:
        transport.close()
    assert len(sink.received) == 5
    assert transport.connections_opened == 1
    assert len(sink.peers) == 1  # all five over the same connection
    first = sink.received[0]
    assert first.mail_from == f"bounce+{message_token(SIGNER, 1)}@news.example.com"
    assert first.rcpt_tos == ["user1@example.org"]
    msg = parse(first.content)
    assert msg["Subject"] == "Message n°1"
    assert msg["Message-ID"] == f"<{message_token(SIGNER, 1)}@news.example.com>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = (p.get_content().replace("\r\n", "\n") for p in msg.iter_parts())
    assert text == "Hello 1 ✓\n.leading dot line\n"  # dot-stuffing undone by the server
    assert "<p>Hello 1 ✓</p>" in html


def test_temporary_then_success(smtp_server: ServerFactory) -> None:
    sink, port = smtp_server(Sink(rcpt_answers=["451 4.3.0 Try again later"]))
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
    message, envelope_from, recipients = outgoing()
    first = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    assert first.outcome is Outcome.TEMPORARY
    assert first.code == 451 and "Try again later" in first.reason
    second = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    assert second.outcome is Outcome.SENT
    assert len(sink.received) == 1
    assert transport.connections_opened == 1  # RSET after the 451, connection kept
    transport.close()


def test_permanent_failure(smtp_server: ServerFactory) -> None:
    sink, port = smtp_server(Sink(rcpt_answers=["550 5.1.1 <jane@example.org>: User unknown"]))
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
    message, envelope_from, recipients = outgoing()
    result = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.outcome is Outcome.PERMANENT
    assert result.code == 550 and "User unknown" in result.reason
    assert sink.received == []
    # the connection survives for the next message
    assert transport.send(message, envelope_from=envelope_from, recipients=recipients).ok
    assert transport.connections_opened == 1
    transport.close()


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [("554 5.7.1 Message rejected as spam", Outcome.PERMANENT), ("452 4.3.1 Insufficient storage", Outcome.TEMPORARY)],
)
def test_data_answers(smtp_server: ServerFactory, answer: str, outcome: Outcome) -> None:
    _sink, port = smtp_server(Sink(data_answers=[answer]))
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
    message, envelope_from, recipients = outgoing()
    result = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.outcome is outcome and result.code == int(answer[:3])
    assert transport.send(message, envelope_from=envelope_from, recipients=recipients).ok
    transport.close()


def test_partial_recipient_refusal_is_reported(smtp_server: ServerFactory) -> None:
    sink, port = smtp_server(Sink(rcpt_answers=["250 OK", "550 5.1.1 nope"]))
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
    message, envelope_from, _ = outgoing()
    result = transport.send(message, envelope_from=envelope_from, recipients=["a@example.org", "b@example.org"])
    assert result.ok and result.refused == {"b@example.org": (550, "5.1.1 nope")}
    assert sink.received[0].rcpt_tos == ["a@example.org"]
    transport.close()


def test_reconnects_when_the_server_dropped_an_idle_connection(smtp_server: ServerFactory) -> None:
    sink, port = smtp_server(timeout=1.0)  # the server closes idle connections after 1 s
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
    message, envelope_from, recipients = outgoing()
    assert transport.send(message, envelope_from=envelope_from, recipients=recipients).ok
    time.sleep(2.0)
    result = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.ok, result
    assert transport.connections_opened == 2
    assert len(sink.received) == 2 and len(sink.peers) == 2
    transport.close()


def test_connection_refused_is_temporary() -> None:
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    message, envelope_from, recipients = outgoing()
    result = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.outcome is Outcome.TEMPORARY and "cannot connect" in result.reason


def test_server_going_away_mid_use_is_temporary_then_recovers(smtp_server: ServerFactory) -> None:
    sink, port = smtp_server()
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
    message, envelope_from, recipients = outgoing()
    assert transport.send(message, envelope_from=envelope_from, recipients=recipients).ok
    for conn in transport._idle:  # simulate a network failure on the pooled connection
        conn.smtp.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    result = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.ok  # stale pooled connection detected before MAIL FROM, retried fresh
    assert transport.connections_opened == 2
    transport.close()


def test_pool_is_thread_safe_and_bounded(smtp_server: ServerFactory) -> None:
    sink, port = smtp_server()
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}?pool=2")
    results: list[bool] = []

    def worker(base: int) -> None:
        for n in range(base, base + 5):
            message, envelope_from, recipients = outgoing(n)
            results.append(transport.send(message, envelope_from=envelope_from, recipients=recipients).ok)

    threads = [threading.Thread(target=worker, args=(i * 10,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 20 and len(sink.received) == 20
    assert len(transport._idle) <= 2  # the pool never keeps more than pool=2 idle connections
    transport.close()
    assert transport._idle == []


def test_max_per_connection(smtp_server: ServerFactory) -> None:
    sink, port = smtp_server()
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}?max_per_connection=2")
    for n in range(5):
        message, envelope_from, recipients = outgoing(n)
        assert transport.send(message, envelope_from=envelope_from, recipients=recipients).ok
    assert transport.connections_opened == 3 and len(sink.peers) == 3
    transport.close()


def test_starttls_with_auth(smtp_server: ServerFactory, certificate: tuple[Path, Path]) -> None:
    def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"user@x" and auth_data.password == b"p@ss:w/rd"
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    sink, port = smtp_server(
        tls_context=server_tls(certificate), require_starttls=True, authenticator=authenticator, auth_required=True,
    )
    url = f"smtp://user%40x:p%40ss%3Aw%2Frd@127.0.0.1:{port}?starttls=1"
    transport = SmtpTransport(parse_smtp_url(url), ssl_context=client_tls(certificate))
    message, envelope_from, recipients = outgoing()
    result = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.ok, result
    assert sink.received[0].login == b"user@x"
    transport.close()
    # wrong password: a configuration problem, never a permanent failure of the message
    bad = SmtpTransport(parse_smtp_url(f"smtp://user%40x:wrong@127.0.0.1:{port}?starttls=1&timeout=5"),
                        ssl_context=client_tls(certificate))
    result = bad.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.outcome is Outcome.TEMPORARY and "authentication failed" in result.reason


def test_starttls_certificate_is_verified(smtp_server: ServerFactory, certificate: tuple[Path, Path]) -> None:
    _sink, port = smtp_server(tls_context=server_tls(certificate))
    message, envelope_from, recipients = outgoing()
    strict = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}?starttls=1")  # system CAs only
    result = strict.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.outcome is Outcome.TEMPORARY and "CERTIFICATE_VERIFY_FAILED" in result.reason
    lax = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}?starttls=1&verify=0")
    assert lax.send(message, envelope_from=envelope_from, recipients=recipients).ok
    lax.close()


def test_starttls_required_but_not_offered(smtp_server: ServerFactory) -> None:
    _sink, port = smtp_server()
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}?starttls=1")
    message, envelope_from, recipients = outgoing()
    result = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.outcome is Outcome.TEMPORARY and "STARTTLS" in result.reason


def test_implicit_tls(smtp_server: ServerFactory, certificate: tuple[Path, Path]) -> None:
    sink, port = smtp_server(ssl_context=server_tls(certificate))
    transport = SmtpTransport(parse_smtp_url(f"smtps://127.0.0.1:{port}"), ssl_context=client_tls(certificate))
    message, envelope_from, recipients = outgoing()
    assert transport.send(message, envelope_from=envelope_from, recipients=recipients).ok
    assert transport.send(message, envelope_from=envelope_from, recipients=recipients).ok
    assert transport.connections_opened == 1 and len(sink.received) == 2
    transport.close()


# ------------------------------------------------------------------ configuration


def test_parse_smtp_url() -> None:
    cfg = parse_smtp_url("smtp://us%40er:p%3Ass@mail.example.com:587?starttls=1&timeout=5&pool=3")
    assert (cfg.host, cfg.port, cfg.starttls, cfg.implicit_tls) == ("mail.example.com", 587, "always", False)
    assert (cfg.username, cfg.password, cfg.timeout, cfg.pool_size) == ("us@er", "p:ss", 5.0, 3)
    assert "p:ss" not in repr(cfg)
    cfg = parse_smtp_url("smtps://mail.example.com")
    assert (cfg.port, cfg.implicit_tls, cfg.starttls) == (465, True, "never")
    cfg = parse_smtp_url("smtp://relay")
    assert (cfg.port, cfg.starttls, cfg.username, cfg.verify) == (25, "auto", None, True)
    assert parse_smtp_url("smtp://relay?starttls=0&verify=0").starttls == "never"


@pytest.mark.parametrize(
    "url",
    ["http://x", "smtp://", "smtp://h?starttls=maybe", "smtp://h?bogus=1", "smtp://h:99999",
     "smtps://h?starttls=1", "smtp://h?pool=0", "smtp://h?timeout=abc"],
)
def test_parse_smtp_url_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_smtp_url(url)
    assert "NURTURE_SMTP_URL" in str(info.value)


def test_transport_from_settings(tmp_path: Path) -> None:
    base = {"NURTURE_DATA_DIR": str(tmp_path), "NURTURE_SECRET_KEY": "x" * 20}
    assert transport_from_settings(load_settings(base)).name == "outbox"
    smtp = transport_from_settings(load_settings({**base, "NURTURE_SMTP_URL": "smtp://relay:2525"}))
    assert isinstance(smtp, SmtpTransport) and smtp.config.port == 2525


# ------------------------------------------------------------------ outbox and retries


def test_memory_outbox_records_messages() -> None:
    outbox = MemoryOutbox()
    message, envelope_from, recipients = outgoing(7)
    assert outbox.send(message, envelope_from=envelope_from, recipients=recipients).ok
    assert outbox.send(message, envelope_from=envelope_from, recipients=[]).outcome is Outcome.PERMANENT
    (entry,) = outbox.entries
    assert entry.envelope_from == envelope_from and entry.recipients == ("jane@example.org",)
    assert parse(entry.raw)["Subject"] == "Message n°7"


def test_retry_delay_grows_with_jitter_and_cap() -> None:
    rng = random.Random(1)
    delays = [retry_delay(a, rng=rng) for a in range(1, 13)]
    for attempt, delay in enumerate(delays, start=1):
        full = min(6 * 3600.0, 60.0 * 2 ** (attempt - 1))
        assert full / 2 <= delay <= full
    assert delays[-1] <= 6 * 3600
    assert retry_delay(1, rng=random.Random(0)) != retry_delay(1, rng=random.Random(2))  # jitter
    assert retry_delay(1000) <= 6 * 3600  # no overflow
    with pytest.raises(ValueError):
        retry_delay(0)
    assert should_retry(1) and not should_retry(10)


def test_sends_an_email_message_object_too(smtp_server: ServerFactory) -> None:
    sink, port = smtp_server()
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = "plain object"
    message.set_content("body\n")
    assert transport.send(message, envelope_from="a@example.com", recipients=["b@example.com"]).ok
    assert parse(sink.received[0].content)["Subject"] == "plain object"
    outbox = MemoryOutbox()
    assert outbox.send(message, envelope_from="a@example.com", recipients=["b@example.com"]).ok
    assert outbox.entries[0].message["Subject"] == "plain object"
    transport.close()


def test_international_recipient_needs_smtputf8(smtp_server: ServerFactory) -> None:
    sink, port = smtp_server(enable_SMTPUTF8=True)
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
    message, envelope_from, recipients = outgoing(5, to="Jürgen <jürgen@exämple.de>")
    assert recipients == ["jürgen@exämple.de"]
    result = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.ok, result
    assert sink.received[0].rcpt_tos == ["jürgen@exämple.de"]
    transport.close()
    _sink2, port2 = smtp_server(enable_SMTPUTF8=False)
    plain = SmtpTransport.from_url(f"smtp://127.0.0.1:{port2}")
    result = plain.send(message, envelope_from=envelope_from, recipients=recipients)
    assert result.outcome is Outcome.PERMANENT and "SMTPUTF8" in result.reason
    plain.close()


def test_decide_maps_results_to_deliveries() -> None:
    from datetime import UTC, datetime

    from nurture.channels.email.transports import FAILURE_SMTP, SendResult, decide

    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert decide(SendResult(Outcome.SENT, "250 ok"), 1, now).state == "sent"
    retry = decide(SendResult(Outcome.TEMPORARY, "451 later", 451), 1, now, rng=random.Random(3))
    assert retry.state == "retry" and retry.retry_at is not None
    assert 30 <= (retry.retry_at - now).total_seconds() <= 60
    failed = decide(SendResult(Outcome.PERMANENT, "550 unknown", 550), 1, now)
    assert (failed.state, failed.failure_type, failed.reason) == ("failed", FAILURE_SMTP, "550 unknown")
    gave_up = decide(SendResult(Outcome.TEMPORARY, "451 later", 451), 10, now)
    assert gave_up.state == "failed" and gave_up.reason.startswith("gave up after 10 attempts")


def test_pipelining_sends_mail_rcpt_and_data_as_one_group() -> None:
    """A server that answers a pipelined group only once it has the whole group (allowed by
    RFC 2920) would stall a client that waits for each reply: ours writes the group at once."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 strict.example ESMTP\r\n")
            assert lines.readline().upper().startswith(b"EHLO")
            conn.sendall(b"250-strict.example\r\n250 PIPELINING\r\n")
            group = [lines.readline() for _ in range(3)]  # MAIL, RCPT, DATA before any reply
            seen.extend(group)
            conn.sendall(b"250 sender ok\r\n250 rcpt ok\r\n354 go ahead\r\n")
            body = b""
            while not body.endswith(b"\r\n.\r\n"):
                body += lines.readline()
            seen.append(body)
            conn.sendall(b"250 2.0.0 queued as ABC\r\n")
            lines.readline()  # QUIT
            conn.sendall(b"221 bye\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}?starttls=0&timeout=5")
    message, envelope_from, recipients = outgoing()
    result = transport.send(message, envelope_from=envelope_from, recipients=recipients)
    transport.close()
    thread.join(5)
    listener.close()
    assert result.ok and result.reason == "250 2.0.0 queued as ABC"
    assert seen[0] == f"MAIL FROM:<{envelope_from}>\r\n".encode()
    assert seen[1] == b"RCPT TO:<jane@example.org>\r\n"
    assert seen[2] == b"DATA\r\n"
    assert b"\r\n..leading dot line\r\n" in seen[3]  # dot-stuffed on the wire
