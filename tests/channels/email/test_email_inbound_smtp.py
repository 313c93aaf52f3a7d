"""The inbound SMTP listener handler, on loopback, fed with corpus messages."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from nurture.channels.email.inbound import InboundKind, InboundResult, parse_inbound
from nurture.channels.email.inbound_smtp import (
    InboundEnvelope,
    InboundTemporaryError,
    start_listener,
)

from .smtp_sink import free_port
from .test_email_inbound import SIGNER
from .test_email_inbound import load as load_lf


def load(name: str, trace_id: int) -> bytes:
    """A corpus message with CRLF line ends, as it travels over SMTP."""
    return load_lf(name, trace_id).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Recorder:
    def __init__(self) -> None:
        self.results: list[tuple[InboundEnvelope, InboundResult]] = []
        self.fail_next: Exception | None = None

    def __call__(self, item: InboundEnvelope) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.results.append((item, parse_inbound(item.raw, SIGNER)))


@pytest.fixture
def listener() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    controller = start_listener(recorder, port=port, accept_domains={"news.example.com"}, max_size=200_000)
    try:
        yield recorder, port
    finally:
        controller.stop()


def test_bounce_and_reply_arrive_over_smtp(listener: tuple[Recorder, int]) -> None:
    recorder, port = listener
    with smtplib.SMTP("127.0.0.1", port) as client:
        bounce = load("postfix_user_unknown.eml", 21)
        client.sendmail("", ["bounce+x@news.example.com"], bounce)
        client.sendmail("liam@gmail.com", ["news@news.example.com"], load("human_reply.eml", 22))
    (env1, r1), (env2, r2) = recorder.results
    assert (r1.kind, r1.trace_id, r1.hard) == (InboundKind.BOUNCE, 21, True)
    assert (r2.kind, r2.trace_id) == (InboundKind.REPLY, 22)
    assert env1.mail_from == "" and env1.rcpt_tos == ("bounce+x@news.example.com",)
    assert env2.peer == "127.0.0.1"


def test_foreign_domain_is_refused(listener: tuple[Recorder, int]) -> None:
    _recorder, port = listener
    with smtplib.SMTP("127.0.0.1", port) as client, pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail("a@example.org", ["someone@elsewhere.example"], b"Subject: x\r\n\r\nbody\r\n")


@pytest.mark.parametrize("error", [InboundTemporaryError("database unavailable"), RuntimeError("bug")])
def test_failures_answer_451_so_the_mta_retries(listener: tuple[Recorder, int], error: Exception) -> None:
    recorder, port = listener
    recorder.fail_next = error
    with smtplib.SMTP("127.0.0.1", port) as client:
        with pytest.raises(smtplib.SMTPDataError) as info:
            client.sendmail("", ["bounce+x@news.example.com"], load("exim_failed.eml", 1))
        assert info.value.smtp_code == 451
        client.sendmail("", ["bounce+x@news.example.com"], load("exim_failed.eml", 1))  # the retry
    assert len(recorder.results) == 1


def test_oversized_message_is_refused(listener: tuple[Recorder, int]) -> None:
    recorder, port = listener
    with smtplib.SMTP("127.0.0.1", port) as client, pytest.raises(smtplib.SMTPException):
        client.sendmail("a@example.org", ["news@news.example.com"], b"Subject: big\r\n\r\n" + b"x" * 300_000 + b"\r\n")
    assert recorder.results == []
