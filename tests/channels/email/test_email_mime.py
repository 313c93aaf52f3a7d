"""The outgoing MIME message and its headers."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from nurture.channels.email.mime import (
    MessageSpec,
    Unsubscribe,
    build_message,
    parse_address,
    verp_address,
)
from nurture.tracking.tokens import KIND_MESSAGE, TokenSigner, message_token

SIGNER = TokenSigner("mime-test-secret-0123456789")
TOKEN = message_token(SIGNER, 4242)


def spec(**overrides: object) -> MessageSpec:
    values: dict[str, object] = {
        "from_addr": "Zoë from Acme <news@news.example.com>",
        "to_addr": "Jürgen Müller <juergen@example.de>",
        "subject": "Größte Rabatte — 20% off ✓",
        "html": "<html><body><p>Hallo Jürgen, <a href='https://x.example/'>shop</a></p>" + "x" * 2000 + "</body></html>",
        "text": "Hallo Jürgen,\n\nshop: https://x.example/\n.\nA line starting with a dot\n",
        "token": TOKEN,
        "domain": "news.example.com",
        "reply_to": "Support <support@acme.example>",
        "unsubscribe": Unsubscribe("https://news.example.com/u/abc", "unsubscribe+abc@news.example.com"),
        "date": datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
    }
    values.update(overrides)
    return MessageSpec(**values)  # type: ignore[arg-type]


def reparse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_structure_and_headers() -> None:
    out = build_message(spec())
    raw = out.as_bytes()
    assert raw.isascii() and b"\r\n" in raw  # RFC 2047-encoded, CRLF
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = reparse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    text = parts[0].get_content().replace("\r\n", "\n")
    assert "Hallo Jürgen" in text and "\n.\nA line starting with a dot" in text
    assert "<a href='https://x.example/'>shop</a>" in parts[1].get_content()
    assert msg["Subject"] == "Größte Rabatte — 20% off ✓"
    assert msg["From"].addresses[0].display_name == "Zoë from Acme"
    assert msg["From"].addresses[0].addr_spec == "news@news.example.com"
    assert msg["To"].addresses[0].addr_spec == "juergen@example.de"
    assert msg["Reply-To"].addresses[0].addr_spec == "support@acme.example"
    assert msg["Message-ID"] == f"<{TOKEN}@news.example.com>"
    assert msg["Date"] == "Sun, 29 Nov 2026 10:00:00 +0000"
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Unsubscribe"] == (
        "<https://news.example.com/u/abc>, <mailto:unsubscribe+abc@news.example.com?subject=unsubscribe>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Precedence"] == "bulk"
    assert msg["Auto-Submitted"] == "auto-generated"


def test_envelope_is_verp_and_message_id_token_verifies() -> None:
    out = build_message(spec())
    assert out.envelope_from == f"bounce+{TOKEN}@news.example.com" == verp_address(TOKEN, "news.example.com")
    assert out.recipients == ("juergen@example.de",)
    msg = reparse(out.as_bytes())
    token = msg["Message-ID"].strip("<>").split("@")[0]
    data = SIGNER.verify(token, kind=KIND_MESSAGE)
    assert data is not None and data.ids == (4242,)


def test_transactional_variant_and_extra_headers() -> None:
    out = build_message(spec(bulk=False, unsubscribe=None, reply_to=None, headers={"X-Campaign": "7"}))
    msg = reparse(out.as_bytes())
    for absent in ("Precedence", "Auto-Submitted", "List-Unsubscribe", "List-Unsubscribe-Post", "Reply-To"):
        assert msg[absent] is None
    assert msg["X-Campaign"] == "7"


def test_naive_date_is_utc_written_plus_0000() -> None:
    """The engine's times are naive UTC: the header says +0000 (-0000 means "zone unknown")."""
    msg = reparse(build_message(spec(date=datetime(2026, 11, 29, 10, 0))).as_bytes())
    assert msg["Date"] == "Sun, 29 Nov 2026 10:00:00 +0000"
    default = reparse(build_message(spec(date=None)).as_bytes())
    assert str(default["Date"]).endswith("+0000")


def test_subject_whitespace_collapsed_and_date_defaults_to_now() -> None:
    out = build_message(spec(subject="  Hello\n  there\t!  ", date=None))
    msg = reparse(out.as_bytes())
    assert msg["Subject"] == "Hello there !"
    assert msg["Date"] is not None


@pytest.mark.parametrize(
    "overrides",
    [
        {"to_addr": "victim@example.com\r\nBcc: everyone@example.com"},
        {"from_addr": "a@b.example\nX-Evil: 1"},
        {"to_addr": "not an address"},
        {"to_addr": "a@b.example, c@d.example"},
        {"headers": {"X-Evil": "a\r\nBcc: x@y.example"}},
        {"token": "abc\r\nX: y"},
    ],
)
def test_header_injection_and_bad_addresses_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_message(spec(**overrides))


def test_parse_address() -> None:
    addr = parse_address('"Doe, Jane" <jane@example.com>')
    assert addr.display_name == "Doe, Jane" and addr.addr_spec == "jane@example.com"
    assert parse_address("plain@example.com").display_name == ""


def test_long_headers_fold_and_round_trip() -> None:
    subject = "Très long sujet — " * 12
    unsub = Unsubscribe("https://news.example.com/unsubscribe/" + "a" * 60, "unsubscribe+" + "b" * 40 + "@news.example.com")
    out = build_message(spec(subject=subject, unsubscribe=unsub, from_addr='"Doe, Jane (Acme)" <jane@acme.example>'))
    raw = out.as_bytes()
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in header_block.split(b"\r\n"))
    assert raw.isascii()
    msg = reparse(raw)
    assert msg["Subject"] == subject.strip()
    assert msg["From"].addresses[0].display_name == "Doe, Jane (Acme)"
    assert msg["List-Unsubscribe"].replace("\r\n", "").replace(" ", "") == unsub.header().replace(" ", "")


def test_body_edge_cases_survive_quoted_printable() -> None:
    text = "trailing spaces   \nFrom the start\n=equals= and tabs\t\n" + "long " * 100 + "\nno final newline"
    html = "<p>" + "é" * 500 + "</p>\r\n<p>crlf</p>"
    msg = reparse(build_message(spec(text=text, html=html)).as_bytes())
    plain, rich = (p.get_content().replace("\r\n", "\n") for p in msg.iter_parts())
    assert plain == text + "\n"
    assert rich == html.replace("\r\n", "\n") + "\n"


def test_international_address_uses_utf8_headers() -> None:
    out = build_message(spec(to_addr="Jürgen <jürgen@exämple.de>"))
    assert out.recipients == ("jürgen@exämple.de",)
    msg = email.message_from_string(out.as_bytes().decode("utf-8"), policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "jürgen@exämple.de"
    assert msg.get_content_type() == "multipart/alternative"


def test_message_is_parsed_lazily_from_raw() -> None:
    out = build_message(spec())
    assert out.message["Message-ID"] == f"<{TOKEN}@news.example.com>"
    assert out.message is out.message


def test_long_non_ascii_display_names_use_short_encoded_words() -> None:
    out = build_message(spec(from_addr="Zoë " * 30 + "<news@news.example.com>"))
    header_block = out.as_bytes().split(b"\r\n\r\n", 1)[0].decode("ascii")
    words = re.findall(r"=\?utf-8\?[bq]\?[^?]*\?=", header_block)
    assert words and all(len(w) <= 75 for w in words)
    # RFC 2047 readers drop the whitespace between encoded words; Python's parser keeps it,
    # which only doubles the spaces where the name was split (after a space)
    parsed = reparse(out.as_bytes())["From"].addresses[0].display_name
    assert " ".join(parsed.split()) == ("Zoë " * 30).strip()
