"""Inbound classification over a corpus of bounces, replies and auto-replies.

The corpus (``corpus/*.eml``) holds messages written after the formats of common MTAs and
providers. ``@TOKEN@`` stands for the message token of the file's trace, ``@UTOKEN@`` for the
same token upper-cased (some MTAs fold case), ``@FORGED@`` for a token signed with another key.
"""

from __future__ import annotations

import email
from dataclasses import dataclass
from pathlib import Path

import pytest

from nurture.channels.email.inbound import InboundKind, parse_inbound
from nurture.tracking.tokens import KIND_MESSAGE, TokenSigner, message_token

CORPUS = Path(__file__).parent / "corpus"
SIGNER = TokenSigner("inbound-test-secret-0123456")
FORGER = TokenSigner("somebody-elses-key-01234567")
BOUNCE, REPLY, AUTO, UNKNOWN = InboundKind.BOUNCE, InboundKind.REPLY, InboundKind.AUTO_REPLY, InboundKind.UNKNOWN


@dataclass(frozen=True)
class Expect:
    kind: InboundKind
    matched: bool = True  # the trace is identified
    hard: bool | None = None
    status: str | None = None
    recipient: str | None = None
    reason: str = ""  # a fragment of the reason


EXPECTED: dict[str, Expect] = {
    "postfix_user_unknown.eml": Expect(BOUNCE, True, True, "5.1.1", "jane.doe@example.org", "User unknown"),
    "exim_failed.eml": Expect(BOUNCE, True, True, "5.1.1", "bob@example.net", "User unknown"),
    "sendmail_returned.eml": Expect(BOUNCE, True, True, "5.2.1", "carol@example.com", "Mailbox disabled"),
    "gmail_dsn.eml": Expect(BOUNCE, True, True, "5.1.1", "dave.nonexistent@gmail.com", "does not exist"),
    "outlook_ndr.eml": Expect(BOUNCE, True, True, "5.1.10", "erin@contoso.com", "RecipientNotFound"),
    "yahoo_failure_notice.eml": Expect(BOUNCE, True, True, None, "frank.gone@yahoo.com", "554: delivery error"),
    "qmail_to_from_address.eml": Expect(BOUNCE, True, True, "5.1.1", "grace@legacy.example.net", "no mailbox"),
    "postfix_delayed.eml": Expect(BOUNCE, True, False, "4.4.1", "henry@slow.example.com", "timed out"),
    "exim_quota_soft.eml": Expect(BOUNCE, True, False, "4.2.2", "ivy@full.example.net", "Mailbox full"),
    "forged_bounce.eml": Expect(BOUNCE, False, True, "5.1.1", "victim@example.org"),
    "exchange_legacy_text.eml": Expect(BOUNCE, True, True, "5.1.1", "kim.lee@corp.example", "does not exist"),
    "dsn_multi_recipient.eml": Expect(BOUNCE, True, True, "5.7.1", "lee@blocked.example.net", "content restrictions"),
    "german_unzustellbar.eml": Expect(BOUNCE, True, True, "5.1.1", "max.mustermann@example.de", "Benutzer unbekannt"),
    "vacation_autoreply.eml": Expect(AUTO),
    "outlook_automatic_reply.eml": Expect(AUTO),
    "subject_only_autoreply.eml": Expect(AUTO),
    "human_reply.eml": Expect(REPLY),
    "reply_via_references.eml": Expect(REPLY),
    "forged_reply.eml": Expect(UNKNOWN, False),
    "unrelated.eml": Expect(UNKNOWN, False),
    "success_dsn.eml": Expect(UNKNOWN, True, reason="relayed"),
}


def load(name: str, trace_id: int) -> bytes:
    token = message_token(SIGNER, trace_id)
    text = (CORPUS / name).read_text(encoding="utf-8")
    text = text.replace("@UTOKEN@", token.upper()).replace("@TOKEN@", token)
    text = text.replace("@FORGED@", message_token(FORGER, trace_id))
    return text.encode("utf-8")


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_classification(name: str) -> None:
    expect = EXPECTED[name]
    trace_id = 1000 + sorted(EXPECTED).index(name)
    result = parse_inbound(load(name, trace_id), SIGNER)
    assert result.kind is expect.kind, result
    if expect.matched:
        assert result.trace_id == trace_id, result
        assert result.data is not None and result.data.kind == KIND_MESSAGE
        assert result.token is not None and SIGNER.verify(result.token) is not None
    else:
        assert result.token is None and result.trace_id is None, result
    if expect.kind is BOUNCE:
        assert result.hard is expect.hard, result
        assert result.status == expect.status, result
        assert result.recipient == expect.recipient, result
    else:
        assert result.hard is None
    assert expect.reason in result.reason, result


def test_accepts_str_and_parsed_messages() -> None:
    raw = load("postfix_user_unknown.eml", 5)
    for value in (raw, raw.decode(), email.message_from_bytes(raw)):
        result = parse_inbound(value, SIGNER)
        assert (result.kind, result.trace_id, result.hard) == (BOUNCE, 5, True)


def test_sender_subject_and_message_id_are_reported() -> None:
    result = parse_inbound(load("human_reply.eml", 9), SIGNER)
    assert result.sender == "liam.oconnor@gmail.com"
    assert result.subject == "Re: Spring sale: 20% off"
    assert result.message_id == "<CAJ3xP7q9Lw+UoE8n2vGx0bXrT5YhZk@mail.gmail.com>"


def test_bounce_without_any_token_is_a_bounce_without_trace() -> None:
    raw = load("yahoo_failure_notice.eml", 3).decode()
    token = message_token(SIGNER, 3)
    stripped = raw.replace(token, "unknowntoken")
    result = parse_inbound(stripped, SIGNER)
    assert result.kind is BOUNCE and result.trace_id is None


def test_returned_message_id_is_used_when_the_verp_address_is_lost() -> None:
    raw = load("postfix_user_unknown.eml", 77).decode()
    token = message_token(SIGNER, 77)
    raw = raw.replace(f"bounce+{token}@news.example.com", "news@news.example.com")
    result = parse_inbound(raw, SIGNER)
    assert (result.kind, result.trace_id) == (BOUNCE, 77)


def test_other_bounce_local_part() -> None:
    raw = load("yahoo_failure_notice.eml", 4).decode().replace("bounce+", "return+")
    raw = raw.replace(f"Message-ID: <{message_token(SIGNER, 4)}@", "Message-ID: <other@")
    assert parse_inbound(raw, SIGNER).trace_id is None
    assert parse_inbound(raw, SIGNER, bounce_local="return").trace_id == 4


def test_message_to_verp_address_in_unknown_format_is_a_soft_bounce() -> None:
    token = message_token(SIGNER, 12)
    raw = (
        f"From: robot@challenge.example\nTo: bounce+{token}@news.example.com\n"
        "Subject: Please confirm you are human\n\nClick here to be whitelisted.\n"
    )
    result = parse_inbound(raw, SIGNER)
    assert (result.kind, result.trace_id, result.hard) == (BOUNCE, 12, False)


def test_auto_reply_to_the_return_path_is_not_a_bounce() -> None:
    token = message_token(SIGNER, 13)
    raw = (
        f"From: kim@example.com\nTo: bounce+{token}@news.example.com\nAuto-Submitted: auto-replied\n"
        "Subject: Abwesenheitsnotiz\n\nIch bin nicht im Büro.\n"
    )
    result = parse_inbound(raw, SIGNER)
    assert (result.kind, result.trace_id) == (AUTO, 13)


def test_malformed_input_does_not_crash() -> None:
    for raw in (b"", b"garbage without headers", b"Content-Type: multipart/report\n\n--x\n",
                b"From: MAILER-DAEMON@x\nContent-Type: message/delivery-status\n\nAction: failed\nStatus: 5.0.0\n",
                b"Subject: =?unknown-charset?q?x?=\nFrom: \xff\xfe@x\n\n\xff"):
        result = parse_inbound(raw, SIGNER)
        assert result.kind in InboundKind


def test_dsn_per_message_fields_identify_the_message() -> None:
    token = message_token(SIGNER, 31)
    raw = f"""From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: news@news.example.com
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Address not found.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
X-Original-Message-ID: <{token}@news.example.com>

Final-Recipient: rfc822; x@gmail.com
Action: failed
Status: 5.1.1

--b--
"""
    result = parse_inbound(raw, SIGNER)
    assert (result.kind, result.trace_id, result.hard) == (BOUNCE, 31, True)


def test_person_writing_about_delivery_is_not_a_bounce() -> None:
    raw = "From: Pat <pat@example.com>\nTo: news@news.example.com\nSubject: Order not delivered yet\n\nWhere is it?\n"
    assert parse_inbound(raw, SIGNER).kind is UNKNOWN


def test_mailto_unsubscribe_request() -> None:
    token = SIGNER.sign("unsub", 55, encoding="mail")
    raw = f"From: Ann <ann@example.org>\nTo: unsubscribe+{token}@news.example.com\nSubject: unsubscribe\n\n"
    result = parse_inbound(raw, SIGNER)
    assert (result.kind, result.trace_id, result.sender) == (InboundKind.UNSUBSCRIBE, 55, "ann@example.org")
    forged = TokenSigner("another-key-0123456789abc").sign("unsub", 55, encoding="mail")
    raw = f"From: Ann <ann@example.org>\nTo: unsubscribe+{forged}@news.example.com\nSubject: unsubscribe\n\n"
    assert parse_inbound(raw, SIGNER).kind is UNKNOWN
    # a message token in the unsubscribe address is not an unsubscribe token
    raw = f"From: a@example.org\nTo: unsubscribe+{message_token(SIGNER, 55)}@news.example.com\n\n"
    assert parse_inbound(raw, SIGNER).kind is UNKNOWN
