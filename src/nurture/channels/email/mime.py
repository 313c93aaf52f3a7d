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

import email.policy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

DEFAULT_BOUNCE_LOCAL = "bounce"
# The policy of every message we build: CRLF line endings, RFC 2047 encoded words.
POLICY = email.policy.SMTP


@dataclass(frozen=True)
class OutgoingEmail:
    message: EmailMessage
    envelope_from: str
    recipients: tuple[str, ...]

    def as_bytes(self) -> bytes:
        return self.message.as_bytes(policy=POLICY)


def verp_address(token: str, domain: str, local: str = DEFAULT_BOUNCE_LOCAL) -> str:
    """``bounce+<token>@<domain>``: the envelope sender that identifies the message."""
    return f"{local}+{token}@{domain}"


def message_id(token: str, domain: str) -> str:
    return f"<{token}@{domain}>"


def _check(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name}: line breaks are not allowed in a header value")
    return value


def parse_address(value: str) -> Address:
    """``"Name <a@b>"`` or ``"a@b"`` as an :class:`Address`; raises ValueError if invalid."""
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


def build_message(spec: MessageSpec) -> OutgoingEmail:
    msg = EmailMessage(policy=POLICY)
    sender = parse_address(spec.from_addr)
    recipient = parse_address(spec.to_addr)
    msg["From"] = sender
    msg["To"] = recipient
    if spec.reply_to:
        msg["Reply-To"] = parse_address(spec.reply_to)
    msg["Subject"] = _one_line(spec.subject)
    msg["Date"] = format_datetime(spec.date or datetime.now(UTC))
    msg["Message-ID"] = message_id(_check("token", spec.token), _check("domain", spec.domain))
    if spec.unsubscribe is not None:
        msg["List-Unsubscribe"] = _check("List-Unsubscribe", spec.unsubscribe.header())
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if spec.bulk:
        msg["Precedence"] = "bulk"
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    for name, value in spec.headers.items():
        _check(name, name)
        msg[name] = _check(name, value)
    # quoted-printable keeps the message 7-bit: no reliance on the relay offering 8BITMIME
    msg.set_content(spec.text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(spec.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return OutgoingEmail(
        message=msg,
        envelope_from=verp_address(spec.token, spec.domain, spec.bounce_local),
        recipients=(recipient.addr_spec,),
    )


def recipients_of(message: EmailMessage, headers: Sequence[str] = ("To", "Cc", "Bcc")) -> list[str]:
    """Bare addresses of a message's recipient headers."""
    values = [str(v) for h in headers for v in message.get_all(h, [])]
    return [addr for _name, addr in getaddresses(values) if addr]
