"""IMAP polling against a small IMAP server on loopback."""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from nurture.channels.email.imap import ImapConfig, parse_imap_url, poll_imap
from nurture.channels.email.inbound import InboundKind, InboundResult, parse_inbound
from nurture.channels.email.inbound_smtp import InboundTemporaryError
from nurture.config import ConfigError

from .conftest import client_tls, server_tls
from .fake_imap import FakeImapServer
from .test_email_inbound import SIGNER, load


@pytest.fixture
def server() -> Iterator[FakeImapServer]:
    with FakeImapServer() as fake:
        yield fake


def config(server: FakeImapServer, **extra: str) -> ImapConfig:
    query = "&".join(f"{k}={v}" for k, v in extra.items())
    url = f"imap://robot:p%40ss%20%22word%22@127.0.0.1:{server.port}/INBOX?{query}"
    return parse_imap_url(url)


def test_poll_handles_and_deletes(server: FakeImapServer) -> None:
    server.mailbox.add(load("postfix_user_unknown.eml", 61))
    server.mailbox.add(load("human_reply.eml", 62))
    results: list[InboundResult] = []
    outcome = poll_imap(config(server), lambda raw: results.append(parse_inbound(raw, SIGNER)))
    assert (outcome.handled, outcome.failed, outcome.deferred) == (2, 0, False)
    assert [(r.kind, r.trace_id) for r in results] == [(InboundKind.BOUNCE, 61), (InboundKind.REPLY, 62)]
    assert server.mailbox.messages == {}  # expunged
    assert poll_imap(config(server), results.append).handled == 0


def test_keep_marks_seen_instead_of_deleting(server: FakeImapServer) -> None:
    uid = server.mailbox.add(load("exim_failed.eml", 63))
    seen: list[bytes] = []
    assert poll_imap(config(server, keep="1"), seen.append).handled == 1
    assert server.mailbox.flags[uid] == {"\\Seen"} and uid in server.mailbox.messages
    assert poll_imap(config(server, keep="1"), seen.append).handled == 0
    assert len(seen) == 1


def test_temporary_error_leaves_messages_for_the_next_poll(server: FakeImapServer) -> None:
    first = server.mailbox.add(load("exim_failed.eml", 64))
    server.mailbox.add(load("gmail_dsn.eml", 65))

    def down(raw: bytes) -> None:
        raise InboundTemporaryError("database unavailable")

    outcome = poll_imap(config(server), down)
    assert (outcome.handled, outcome.deferred) == (0, True)
    assert server.mailbox.flags[first] == set()  # BODY.PEEK: still unseen
    seen: list[bytes] = []
    assert poll_imap(config(server), seen.append).handled == 2


def test_unexpected_error_flags_the_message_and_goes_on(server: FakeImapServer) -> None:
    bad = server.mailbox.add(b"Subject: poison\r\n\r\nx\r\n")
    server.mailbox.add(load("exim_failed.eml", 66))
    handled: list[bytes] = []

    def handler(raw: bytes) -> None:
        if b"poison" in raw:
            raise RuntimeError("bug")
        handled.append(raw)

    outcome = poll_imap(config(server), handler)
    assert (outcome.handled, outcome.failed) == (1, 1)
    assert server.mailbox.flags[bad] == {"\\Seen"} and bad in server.mailbox.messages
    assert len(handled) == 1


def test_bad_login_raises(server: FakeImapServer) -> None:
    cfg = parse_imap_url(f"imap://robot:wrong@127.0.0.1:{server.port}")
    with pytest.raises(imaplib.IMAP4.error):
        poll_imap(cfg, lambda raw: None)


def test_parse_imap_url() -> None:
    cfg = parse_imap_url("imaps://u%40x:p%3Aw@imap.example.com/Bounces%20Box?timeout=5&limit=10")
    assert (cfg.host, cfg.port, cfg.implicit_tls, cfg.folder) == ("imap.example.com", 993, True, "Bounces Box")
    assert (cfg.username, cfg.password, cfg.timeout, cfg.limit) == ("u@x", "p:w", 5.0, 10)
    assert "p:w" not in repr(cfg)
    cfg = parse_imap_url("imap://u:p@h?starttls=1&keep=1")
    assert (cfg.port, cfg.starttls, cfg.keep, cfg.folder) == (143, True, True, "INBOX")
    for bad in ("pop3://u@h", "imap://h", "imap://u@h?x=1", "imaps://u@h?starttls=1", "imap://u@h?timeout=x"):
        with pytest.raises(ConfigError):
            parse_imap_url(bad)


def test_imaps(certificate: tuple[Path, Path]) -> None:
    with FakeImapServer(tls=server_tls(certificate)) as fake:
        fake.mailbox.add(load("exim_failed.eml", 67))
        cfg = parse_imap_url(f"imaps://robot:p%40ss%20%22word%22@127.0.0.1:{fake.port}")
        seen: list[bytes] = []
        assert poll_imap(cfg, seen.append, ssl_context=client_tls(certificate)).handled == 1
        assert parse_inbound(seen[0], SIGNER).trace_id == 67
        with pytest.raises(ssl.SSLError):  # an unknown certificate is refused by default
            poll_imap(cfg, seen.append)
