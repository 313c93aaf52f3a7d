"""The outgoing message: ``multipart/alternative`` (text, then HTML) with marketing headers.

Headers set by :func:`build_message`:

* ``From``, ``To``, optional ``Reply-To``, ``Subject`` — non-ASCII encoded per RFC 2047 on
  output; CR/LF in any value is refused (no header injection);
* ``Message-ID: <token@domain>`` — the token (a ``msg`` token, see
  :mod:`nurture.tracking.tokens`) lets replies be matched through In-Reply-To/References;
* ``Date``, ``MIME-Version``;
* ``List-Unsubscribe: <https://…>, <mailto:…>`` and ``List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`` (RFC 8058; the URL must answer a POST without a session);
* for bulk (marketing) mail: ``Precedence: bulk``, ``Auto-Submitted: auto-generated``
  (RFC 3834: responders should not answer) and ``X-Auto-Response-Suppress: OOF, AutoReply``
  (the same for Exchange).

The VERP return path ``bounce+<token>@<domain>`` is the *envelope* sender, returned as
:attr:`OutgoingEmail.envelope_from` for the transport; the receiving MTA writes it into
``Return-Path``, and bounces come back to it.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import itertools
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses
from functools import lru_cache

DEFAULT_BOUNCE_LOCAL = "bounce"
# The policy of every message we build: CRLF line endings, RFC 2047 encoded words.
POLICY = email.policy.SMTP


class OutgoingEmail:
    """A message ready for a transport: its wire bytes (CRLF, 7-bit) and its envelope.

    :attr:`message` parses the bytes back into an :class:`EmailMessage` on first use (for
    inspection, the outbox UI, tests); transports send :attr:`raw` as it is.
    """

    __slots__ = ("_message", "envelope_from", "raw", "recipients")

    def __init__(self, raw: bytes, envelope_from: str, recipients: tuple[str, ...]) -> None:
        self.raw = raw
        self.envelope_from = envelope_from
        self.recipients = recipients
        self._message: EmailMessage | None = None

    @property
    def message(self) -> EmailMessage:
        if self._message is None:
            parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self._message = parsed
        return self._message

    def as_bytes(self) -> bytes:
        return self.raw


def verp_address(token: str, domain: str, local: str = DEFAULT_BOUNCE_LOCAL) -> str:
    """``bounce+<token>@<domain>``: the envelope sender that identifies the message."""
    return f"{local}+{token}@{domain}"


def message_id(token: str, domain: str) -> str:
    return f"<{token}@{domain}>"


def _check(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name}: line breaks are not allowed in a header value")
    return value


# "Plain Name <local@host.tld>" or "local@host.tld" in plain ASCII: what the email package's
# parser returns for these is exactly the two groups (checked against getaddresses), so the
# common case skips the general parser, which costs ~0.1 ms per address.
_SIMPLE_ADDRESS = re.compile(
    r"(?:([A-Za-z0-9_'-]+(?: [A-Za-z0-9_'-]+)*) <)?"
    r"([A-Za-z0-9_.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?(1)>)"
)


@lru_cache(maxsize=256)  # From / Reply-To recur in every message of a mailing
def _parse_cached(value: str) -> Address:
    return _parse_address(value)


def parse_address(value: str) -> Address:
    """``"Name <a@b>"`` or ``"a@b"`` as an :class:`Address`; raises ValueError if invalid."""
    simple = _SIMPLE_ADDRESS.fullmatch(value)
    if simple is not None:
        local, _, domain = simple.group(2).rpartition("@")
        return Address(display_name=simple.group(1) or "", username=local, domain=domain)
    return _parse_cached(value)


def _parse_address(value: str) -> Address:
    _check("address", value)
    pairs = getaddresses([value])
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        raise ValueError(f"not a single email address: {value!r}")
    name, addr = pairs[0]
    local, _, domain = addr.rpartition("@")
    if not local or not domain:
        raise ValueError(f"not a valid email address: {value!r}")
    return Address(display_name=name, username=local, domain=domain)


def format_address(address: Address) -> str:
    return str(address)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Unsubscribe:
    """Where one-click unsubscribes go (URL required, mailto optional)."""

    url: str
    mailto: str | None = None  # an address; "?subject=unsubscribe" is added

    def header(self) -> str:
        parts = [f"<{self.url}>"]
        if self.mailto:
            parts.append(f"<mailto:{self.mailto}?subject=unsubscribe>")
        return ", ".join(parts)


@dataclass(frozen=True)
class MessageSpec:
    """Everything :func:`build_message` needs for one recipient."""

    from_addr: str
    to_addr: str
    subject: str
    html: str
    text: str
    token: str
    domain: str
    reply_to: str | None = None
    unsubscribe: Unsubscribe | None = None
    bulk: bool = True
    date: datetime | None = None
    bounce_local: str = DEFAULT_BOUNCE_LOCAL
    headers: Mapping[str, str] = field(default_factory=dict)


def _header(name: str, value: str) -> bytes:
    """One header line (folded, RFC 2047-encoded when not ASCII), CRLF-terminated."""
    _check(name, value)
    if value.isascii() and len(name) + 2 + len(value) <= 78:
        return f"{name}: {value}\r\n".encode("ascii")
    charset = "us-ascii" if value.isascii() else "utf-8"
    encoded = Header(value, charset, header_name=name).encode(maxlinelen=74, linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def _address_line(name: str, address: Address) -> bytes:
    """``From: Name <a@b>``: a non-ASCII name as RFC 2047 words of at most 75 characters."""
    display = address.display_name
    if not display:
        value = address.addr_spec
    elif display.isascii():
        value = formataddr((display, address.addr_spec))  # quotes specials: "Doe, Jane"
    else:
        words = _encoded_phrase(display)
        value = f"{words}\r\n <{address.addr_spec}>" if "\r\n" in words else f"{words} <{address.addr_spec}>"
    return f"{name}: {value}\r\n".encode("ascii")


def _encoded_phrase(text: str, max_bytes: int = 40) -> str:
    """RFC 2047 words for a display name, each under 75 characters, split after spaces.

    Whitespace between encoded words is not part of the text, so each chunk carries its own
    trailing space; splitting only at spaces keeps parsers that (wrongly) keep the folding
    whitespace from cutting a word in two.
    """
    chunks: list[str] = []
    current = ""
    for piece in re.findall(r"\S+\s*|\s+", text):
        while len(piece.encode("utf-8")) > max_bytes:  # one very long word: cut it
            if current:
                chunks.append(current)
                current = ""
            cut = max_bytes // 4  # at most 4 bytes per character
            chunks.append(piece[:cut])
            piece = piece[cut:]
        if current and len((current + piece).encode("utf-8")) > max_bytes:
            chunks.append(current)
            current = ""
        current += piece
    if current:
        chunks.append(current)
    return "\r\n ".join(Header(c, "utf-8").encode(maxlinelen=998) for c in chunks)


def _list_header(name: str, items: Sequence[str]) -> bytes:
    """``name: a, b`` folded between items when long (each item kept whole)."""
    line = f"{name}: " + ", ".join(items)
    if len(line) > 78:
        line = f"{name}: " + ",\r\n ".join(items)
    return (line + "\r\n").encode("ascii")


def _qp(text: str) -> bytes:
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    encoded = binascii.b2a_qp(body.encode("utf-8"), quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", b"\r\n")


def _part(subtype: str, text: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii") + _qp(text)


def _headers(spec: MessageSpec) -> tuple[list[tuple[str, str | Address]], Address]:
    """Validated header values; raises ValueError on anything that could inject a header."""
    sender = parse_address(spec.from_addr)
    recipient = parse_address(spec.to_addr)
    pairs: list[tuple[str, str | Address]] = [("From", sender), ("To", recipient)]
    if spec.reply_to:
        pairs.append(("Reply-To", parse_address(spec.reply_to)))
    pairs += [
        ("Subject", _one_line(spec.subject)),
        ("Date", _date_header(spec.date) if spec.date else format_datetime(datetime.now(UTC))),
        ("Message-ID", message_id(_check("token", spec.token), _check("domain", spec.domain))),
    ]
    if spec.unsubscribe is not None:
        pairs.append(("List-Unsubscribe", _check("List-Unsubscribe", spec.unsubscribe.header())))
        pairs.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    if spec.bulk:
        pairs += [
            ("Precedence", "bulk"),
            ("Auto-Submitted", "auto-generated"),
            ("X-Auto-Response-Suppress", "OOF, AutoReply"),
        ]
    for name, value in spec.headers.items():
        if not re.fullmatch(r"[!-9;-~]+", name):
            raise ValueError(f"invalid header name {name!r}")
        pairs.append((name, _check(name, value)))
    return pairs, recipient


_BOUNDARY_PREFIX = "=_nurture_" + secrets.token_hex(6)  # per process
_boundary_counter = itertools.count()


def _boundary() -> str:
    """A boundary unique within the process ("=_" never occurs in QP output, so no part
    can contain it; it needs to be unique, not secret: no random bytes per message)."""
    return f"{_BOUNDARY_PREFIX}_{next(_boundary_counter):x}"


@lru_cache(maxsize=64)  # a mailing composes every message of a batch with the same date
def _date_header(date: datetime) -> str:
    """RFC 5322 date; a naive ``date`` is UTC (written ``+0000``: ``-0000`` means "zone unknown")."""
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return format_datetime(date)


def build_message(spec: MessageSpec) -> OutgoingEmail:
    """The message as wire bytes: headers, then multipart/alternative (text, HTML), QP-encoded.

    Serialised directly (``binascii.b2a_qp``, :class:`email.header.Header` for encoded
    words) rather than through :class:`EmailMessage`, which is several times slower; the
    result parses back to the same structure (see the tests). Addresses with a non-ASCII
    local part (SMTPUTF8) go through :class:`EmailMessage` with a UTF-8 policy instead.
    """
    pairs, recipient = _headers(spec)
    envelope_from = verp_address(spec.token, spec.domain, spec.bounce_local)
    if not all(v.addr_spec.isascii() for _n, v in pairs if isinstance(v, Address)):
        return _build_international(spec, pairs, recipient, envelope_from)
    out = bytearray()
    for name, value in pairs:
        if isinstance(value, Address):
            out += _address_line(name, value)
        elif name == "List-Unsubscribe":
            out += _list_header(name, [v.strip() for v in value.split(",")])
        else:
            out += _header(name, value)
    boundary = _boundary()
    out += b"MIME-Version: 1.0\r\n"
    out += f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode("ascii")
    for subtype, text in (("plain", spec.text), ("html", spec.html)):
        out += f"--{boundary}\r\n".encode("ascii")
        out += _part(subtype, text) + b"\r\n"  # this CRLF belongs to the next delimiter
    out += f"--{boundary}--\r\n".encode("ascii")
    return OutgoingEmail(bytes(out), envelope_from, (recipient.addr_spec,))


def _build_international(
    spec: MessageSpec, pairs: list[tuple[str, str | Address]], recipient: Address, envelope_from: str
) -> OutgoingEmail:
    policy = POLICY.clone(utf8=True)
    msg = EmailMessage(policy=policy)
    for name, value in pairs:
        msg[name] = value
    msg.set_content(spec.text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(spec.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return OutgoingEmail(msg.as_bytes(policy=policy), envelope_from, (recipient.addr_spec,))


def recipients_of(message: EmailMessage, headers: Sequence[str] = ("To", "Cc", "Bcc")) -> list[str]:
    """Bare addresses of a message's recipient headers."""
    values = [str(v) for h in headers for v in message.get_all(h, [])]
    return [addr for _name, addr in getaddresses(values) if addr]
