"""Inbound mail classification: bounce, reply, auto-reply or unknown, with the message token.

:func:`parse_inbound` takes the raw message (bytes, str or a parsed message) and returns an
:class:`InboundResult`; it never touches the database, so the SMTP listener, the pipe
command and IMAP polling can all call it and then record the result.

Matching. Every message we send carries a signed ``msg`` token (see
:mod:`nurture.tracking.tokens`) twice: in its Message-ID ``<token@domain>`` and in its VERP
envelope sender ``bounce+<token>@domain``. Tokens are looked for, in this order:

1. bounces: the VERP address in the delivery headers (``X-Original-To``, ``Delivered-To``,
   ``Envelope-To``, ``To``, ``Cc``…), the DSN's per-message and per-recipient fields
   (``Original-Envelope-Id``, ``Original-Recipient``, ``Final-Recipient``), the headers of
   the returned message (``Message-ID``, ``Return-Path``,
   ``X-Microsoft-Original-Message-ID``…), and finally any VERP address or ``Message-ID:``
   line quoted in the text of the report (non-standard bounces paste the original headers);
2. replies and auto-replies: ``In-Reply-To``, then ``References`` (newest first), then the
   VERP address (some responders answer the Return-Path).

Each candidate must verify with the signer (forged or altered tokens are ignored).

Classification, in order:

* a mail to ``unsubscribe+<token>@domain`` (the ``mailto:`` of ``List-Unsubscribe``) with a
  valid ``unsub`` token → unsubscribe;
* an RFC 3464 report (``message/delivery-status``): ``failed`` → bounce, ``delayed`` →
  soft bounce, only ``delivered``/``relayed``/``expanded`` → unknown (a success notice);
  hard when the status is ``5.x.x``, soft for ``4.x.x``;
* a non-standard bounce — from ``MAILER-DAEMON``/``postmaster`` or with a bounce-like
  subject — recognised by flufl.bounce's detectors (Exim, qmail, Yahoo, Exchange…) or by
  status codes and phrases in the report text;
* an auto-reply (``Auto-Submitted`` other than ``no``, ``X-Autoreply``, ``X-Autorespond``,
  ``Precedence: auto_reply|bulk|junk``, ``X-Auto-Response-Suppress``, vacation / out of
  office subjects in several languages) — never counted as a reply;
* a reply: ``In-Reply-To``/``References`` name one of our Message-IDs;
* anything else sent to a VERP address or by a mailer daemon: a bounce in a format we do
  not know (soft);
* otherwise unknown.
"""

from __future__ import annotations

import email
import email.message
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from enum import StrEnum
from typing import Any

from flufl.bounce import all_failures

from nurture.tracking.tokens import KIND_MESSAGE, KIND_UNSUBSCRIBE, TokenData, TokenSigner


class InboundKind(StrEnum):
    BOUNCE = "bounce"
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    UNSUBSCRIBE = "unsubscribe"  # a mail to the List-Unsubscribe mailto address
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class InboundResult:
    kind: InboundKind
    token: str | None = None  # the verified token as found
    data: TokenData | None = None
    hard: bool | None = None  # bounces: True for a permanent failure (5.x.x)
    status: str | None = None  # bounces: the enhanced status code, e.g. "5.1.1"
    reason: str = ""
    recipient: str | None = None  # bounces: the address that failed
    sender: str | None = None  # the From address (for bounce-counter resets, reply records)
    subject: str = ""
    message_id: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    @property
    def trace_id(self) -> int | None:
        return self.data.ids[0] if self.data and self.data.ids else None


# --------------------------------------------------------------------------- patterns

_DELIVERY_HEADERS = (
    "X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "X-Original-Recipient",
    "X-Rcpt-To", "To", "Cc",
)
_RETURNED_HEADERS = (
    "Message-ID", "X-Microsoft-Original-Message-ID", "Return-Path", "X-Original-Return-Path",
    "Sender", "Errors-To", "References", "In-Reply-To",
)
_DAEMON_LOCALS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mailer_daemon"}
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|has failed|failed|"
    r"problem|incomplete|delayed)|mail delivery (failed|failure|subsystem|problem)|"
    r"returned (mail|to sender)|failure notice|delivery notification|non.?delivery|"
    r"could not be delivered|not delivered|nondeliverable|mail system error|"
    r"warning: (could not|message)|rejected:|returning message to sender|unzustellbar|"
    r"non remis|no se puede entregar|onbestelbaar",
    re.I,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic|matische|matisch)?[ _-]?(reply|response|respond|antwort|antwoord|svar|"
    r"risposta)|auto:|out of (the )?office|ooo\b|vacation|away from (the )?office|"
    r"i am (currently )?(away|out)|absence|abwesen|réponse automatique|reponse automatique|"
    r"absent|respuesta automática|respuesta automatica|fuera de la oficina|"
    r"risposta automatica|fuori sede|automatisch antwoord|afwezig|autosvar|on leave|"
    r"out of office)",
    re.I,
)
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Autogenerated",
                 "X-Auto-Response-Suppress", "X-FC-MachineGenerated")
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BASIC = re.compile(r"(?:^|said:|:|\()\s*([45][0-5]\d)(?:[\s:-]|$)", re.M)
_SOFT_PHRASES = re.compile(
    r"delayed|will (be )?retr(y|ied)|still (being )?retr|temporar(y|ily)|"
    r"try again later|not yet been delivered|greylist",
    re.I,
)
_COPY_SEPARATORS = re.compile(
    r"^.*(below this line is a copy|this is a copy of the message|original message follows|"
    r"----- original message -----|--- the header of the original message|"
    r"unsent message below|------ this is a copy).*$",
    re.I | re.M,
)
_TAGS = re.compile(r"<[^>]+>")
_ADDRESS = re.compile(r"<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?")


def _verp_re(local: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.+-]){re.escape(local)}\+([A-Za-z0-9_-]{{8,200}})@", re.I)


_MSGID_RE = re.compile(r"<([A-Za-z0-9_-]{8,200})@[^<>\s]+>")
_MSGID_LINE = re.compile(r"^\s*(?:>\s*)?Message-ID:\s*(<[^>]+>)", re.I | re.M)


# --------------------------------------------------------------------------- helpers


def _decode(value: object) -> str:
    """A header value as text: RFC 2047 words decoded, raw 8-bit UTF-8 recovered."""
    if isinstance(value, Header):  # compat32 wraps raw 8-bit headers as unknown-8bit
        chunks: list[str] = []
        for data, charset in decode_header(value):
            if isinstance(data, str):
                chunks.append(data)
                continue
            try:
                chunks.append(data.decode(charset if charset and charset != "unknown-8bit" else "utf-8", "replace"))
            except LookupError:
                chunks.append(data.decode("utf-8", "replace"))
        return "".join(chunks)
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # raw 8-bit bytes (surrogateescape)
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if "=?" in text:
        try:
            text = str(make_header(decode_header(text)))
        except (ValueError, LookupError, UnicodeError):
            pass
    return text


def _header(msg: Message, name: str) -> str:
    values = msg.get_all(name) or []
    return " ".join(" ".join(_decode(v).split()) for v in values)


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # malformed transfer encoding
        payload = None
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, "replace")
        except LookupError:
            text = payload.decode("utf-8", "replace")
    else:
        raw = part.get_payload()
        text = raw if isinstance(raw, str) else ""
    if part.get_content_subtype() == "html":
        text = _TAGS.sub(" ", text)
        text = re.sub(r"&nbsp;|&#160;", " ", text)
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text


@dataclass
class _Parts:
    notice: list[str] = field(default_factory=list)  # text of the report itself
    returned: list[Message] = field(default_factory=list)  # headers of the returned message
    returned_text: list[str] = field(default_factory=list)  # text inside the returned message
    dsn_message: list[Message] = field(default_factory=list)  # per-message DSN fields
    dsn_recipients: list[Message] = field(default_factory=list)  # per-recipient DSN blocks


def _dsn_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = _part_text(part) if not isinstance(payload, str) else payload
    blocks = [b for b in re.split(r"\r?\n\s*\r?\n", text.strip()) if b.strip()]
    parser = HeaderParser()
    return [parser.parsestr(b.strip() + "\n") for b in blocks]


def _collect(msg: Message, parts: _Parts, inside_returned: bool = False) -> None:
    ctype = msg.get_content_type()
    if ctype in ("message/delivery-status", "message/global-delivery-status"):
        blocks = _dsn_blocks(msg)
        if blocks:
            parts.dsn_message.append(blocks[0])
            parts.dsn_recipients.extend(blocks[1:])
        return
    if ctype in ("text/rfc822-headers", "message/global-headers"):
        text = _part_text(msg)
        parts.returned.append(HeaderParser().parsestr(text.lstrip()))
        return
    if ctype in ("message/rfc822", "message/global"):
        payload = msg.get_payload()
        inner: list[Message] = []
        if isinstance(payload, list):
            inner = [p for p in payload if isinstance(p, Message)]
        elif isinstance(payload, str):
            inner = [email.message_from_string(payload)]
        for sub in inner:
            parts.returned.append(sub)
            _collect(sub, parts, inside_returned=True)
        return
    if msg.is_multipart():
        payload = msg.get_payload()
        if isinstance(payload, list):
            for child in payload:
                if isinstance(child, Message):
                    _collect(child, parts, inside_returned)
        return
    if msg.get_content_maintype() == "text":
        text = _part_text(msg)
        if inside_returned:
            parts.returned_text.append(text)
        else:
            parts.notice.append(text)


def _split_notice(texts: list[str]) -> tuple[str, str]:
    """(the report proper, the quoted copy of the original) for non-MIME bounces."""
    joined = "\n".join(texts)
    match = _COPY_SEPARATORS.search(joined)
    if match is None:
        return joined, ""
    return joined[: match.start()], joined[match.start() :]


def _addr(value: str) -> str | None:
    value = value.strip()
    if ";" in value:
        value = value.split(";", 1)[1]
    _name, address = parseaddr(value.strip())
    return address or None


# --------------------------------------------------------------------------- parser


class InboundParser:
    def __init__(
        self, signer: TokenSigner, *, bounce_local: str = "bounce", unsubscribe_local: str = "unsubscribe"
    ) -> None:
        self.signer = signer
        self.bounce_local = bounce_local
        self._verp = _verp_re(bounce_local)
        self._unsubscribe = _verp_re(unsubscribe_local)

    def _verify(self, candidate: str) -> TokenData | None:
        return self.signer.verify(candidate, kind=KIND_MESSAGE)

    def _first_valid(self, candidates: Iterator[str]) -> tuple[str, TokenData] | None:
        seen: set[str] = set()
        for candidate in candidates:
            if candidate in seen:
                continue
            seen.add(candidate)
            data = self._verify(candidate)
            if data is not None:
                return candidate, data
        return None

    def _verp_tokens(self, text: str) -> Iterator[str]:
        for match in self._verp.finditer(text):
            yield match.group(1)

    def _msgid_tokens(self, text: str) -> Iterator[str]:
        for match in _MSGID_RE.finditer(text):
            yield match.group(1)

    def _envelope_candidates(self, msg: Message) -> Iterator[str]:
        for name in _DELIVERY_HEADERS:
            yield from self._verp_tokens(_header(msg, name))

    def _bounce_candidates(self, msg: Message, parts: _Parts, notice: str, copy: str) -> Iterator[str]:
        yield from self._envelope_candidates(msg)
        for block in parts.dsn_message:
            envid = _header(block, "Original-Envelope-Id")
            if envid:
                yield envid.strip()
            yield from self._verp_tokens(envid)
            yield from self._verp_tokens(_header(block, "X-Postfix-Sender"))
            yield from self._msgid_tokens(_header(block, "X-Original-Message-ID"))
        for block in parts.dsn_recipients:
            for name in ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient"):
                yield from self._verp_tokens(_header(block, name))
        for returned in parts.returned:
            for name in _RETURNED_HEADERS:
                value = _header(returned, name)
                yield from self._verp_tokens(value)
                if name in ("Message-ID", "X-Microsoft-Original-Message-ID"):
                    yield from self._msgid_tokens(value)
        for text in (notice, copy, *parts.returned_text):
            yield from self._verp_tokens(text)
            for match in _MSGID_LINE.finditer(text):
                yield from self._msgid_tokens(match.group(1))

    def _reply_candidates(self, msg: Message) -> Iterator[str]:
        yield from self._msgid_tokens(_header(msg, "In-Reply-To"))
        refs = list(self._msgid_tokens(_header(msg, "References")))
        yield from reversed(refs)

    # ------------------------------------------------------------------------ classify
    def parse(self, raw: bytes | str | Message) -> InboundResult:
        if isinstance(raw, Message):
            msg = raw
        elif isinstance(raw, bytes):
            msg = email.message_from_bytes(raw)
        else:
            msg = email.message_from_string(raw)
        sender_name, sender = parseaddr(_header(msg, "From"))
        subject = _header(msg, "Subject")
        common: dict[str, Any] = {
            "sender": sender or None,
            "subject": subject,
            "message_id": _header(msg, "Message-ID") or None,
        }
        parts = _Parts()
        _collect(msg, parts)
        notice, copy = _split_notice(parts.notice)

        local = sender.split("@", 1)[0].lower() if sender else ""
        from_daemon = local in _DAEMON_LOCALS or bool(
            re.search(r"mail delivery (system|subsystem)|mailer.daemon", sender_name, re.I)
        )
        bounce_like = from_daemon or bool(_BOUNCE_SUBJECT.search(subject))
        envelope = self._first_valid(self._envelope_candidates(msg))

        # 0. a mail to the List-Unsubscribe mailto address (RFC 2369), not from a daemon
        if not from_daemon and not parts.dsn_recipients:
            for name in _DELIVERY_HEADERS:
                for match in self._unsubscribe.finditer(_header(msg, name)):
                    data = self.signer.verify(match.group(1), kind=KIND_UNSUBSCRIBE)
                    if data is not None:
                        return InboundResult(
                            InboundKind.UNSUBSCRIBE, match.group(1), data,
                            reason="unsubscribe request by email", **common,
                        )

        # 1. RFC 3464 delivery status notification
        if parts.dsn_recipients:
            result = self._from_dsn(msg, parts, notice, copy, common)
            if result is not None:
                return result

        # 2. non-standard bounce
        if bounce_like and not self._is_auto_reply(msg, subject, strict=True):
            result = self._non_standard(msg, parts, notice, copy, common, require_evidence=True)
            if result is not None:
                return result

        # 3. auto-reply
        if self._is_auto_reply(msg, subject):
            found = self._first_valid(self._reply_candidates(msg)) or envelope
            token, data = found if found else (None, None)
            return InboundResult(InboundKind.AUTO_REPLY, token, data, reason="auto-reply", **common)

        # 4. reply
        found = self._first_valid(self._reply_candidates(msg))
        if found is not None:
            return InboundResult(InboundKind.REPLY, found[0], found[1], reason="reply", **common)

        # 5. anything else sent to a VERP address, or by a mailer daemon, is a bounce in a
        #    format we cannot parse (a person writing "not delivered" in a subject is not)
        if envelope is not None or from_daemon:
            result = self._non_standard(msg, parts, notice, copy, common, require_evidence=False)
            if result is not None:
                return result
        return InboundResult(InboundKind.UNKNOWN, reason="not a bounce or a reply to our mail", **common)

    @staticmethod
    def _is_auto_reply(msg: Message, subject: str, *, strict: bool = False) -> bool:
        """Auto-reply markers; ``strict`` ignores those an MTA bounce may carry too."""
        auto_submitted = _header(msg, "Auto-Submitted").lower()
        if auto_submitted.startswith("auto-replied") and not strict:
            return True
        if auto_submitted and not auto_submitted.startswith("no") and not strict:
            return True
        for name in _AUTO_HEADERS:
            if msg.get(name) is not None and not (strict and name == "X-Auto-Response-Suppress"):
                return True
        precedence = (_header(msg, "Precedence") or _header(msg, "X-Precedence")).lower()
        if precedence in ("auto_reply", "auto-reply") or (not strict and precedence in ("bulk", "junk")):
            return True
        return bool(_AUTO_SUBJECT.search(subject))

    def _from_dsn(
        self, msg: Message, parts: _Parts, notice: str, copy: str, common: dict[str, Any]
    ) -> InboundResult | None:
        failed: list[Message] = []
        delayed: list[Message] = []
        for block in parts.dsn_recipients:
            action = _header(block, "Action").lower()
            if action.startswith(("failed", "failure", "error")):
                failed.append(block)
            elif action.startswith("delayed"):
                delayed.append(block)
        found = self._first_valid(self._bounce_candidates(msg, parts, notice, copy))
        token, data = found if found else (None, None)
        if not failed and not delayed:
            actions = ", ".join(sorted({_header(b, "Action").lower() for b in parts.dsn_recipients}))
            return InboundResult(
                InboundKind.UNKNOWN, token, data,
                reason=f"delivery status notification ({actions or 'no action'})", **common,
            )
        block = (failed or delayed)[0]
        status_field = _header(block, "Status")
        match = _ENHANCED.search(status_field)
        diagnostic = _header(block, "Diagnostic-Code")
        if match is None:
            match = _ENHANCED.search(diagnostic)
        status = match.group(0) if match else None
        if status is not None:
            hard = status.startswith("5")
        else:
            hard = bool(failed)
        if not failed:
            hard = False
        reason = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic else diagnostic
        # multi-line SMTP replies repeat their code on each line: "550-5.1.1 a 550-5.1.1 b"
        reason = re.sub(r"(?<=\s)[245]\d\d[- ](?:[245]\.\d{1,3}\.\d{1,3}\s+)?", "", reason)
        reason = " ".join(reason.split())
        if not reason:
            reason = f"{_header(block, 'Action').lower()} {status or ''}".strip()
        recipient = _addr(_header(block, "Final-Recipient")) or _addr(
            _header(block, "Original-Recipient")
        )
        details = {
            k: v
            for k, v in (
                ("action", _header(block, "Action").lower()),
                ("remote_mta", _header(block, "Remote-MTA")),
                ("reporting_mta", " ".join(_header(b, "Reporting-MTA") for b in parts.dsn_message).strip()),
            )
            if v
        }
        return InboundResult(
            InboundKind.BOUNCE, token, data, hard=hard, status=status, reason=reason[:1000],
            recipient=recipient, details=details, **common,
        )

    def _non_standard(
        self,
        msg: Message,
        parts: _Parts,
        notice: str,
        copy: str,
        common: dict[str, Any],
        *,
        require_evidence: bool,
    ) -> InboundResult | None:
        try:
            temporary, permanent = all_failures(msg)
        except Exception:  # a detector choking on a malformed message is not our failure
            temporary, permanent = frozenset(), frozenset()
        statuses = [m.group(0) for m in _ENHANCED.finditer(notice) if m.group(1) in "45"]
        basics = [m.group(1) for m in _BASIC.finditer(notice)]
        evidence = bool(temporary or permanent or statuses or basics)
        if require_evidence and not evidence:
            return None
        if any(s.startswith("5") for s in statuses):
            hard, status = True, next(s for s in statuses if s.startswith("5"))
        elif statuses:
            hard, status = False, statuses[0]
        elif any(b.startswith("5") for b in basics):
            hard, status = True, None
        elif basics:
            hard, status = False, None
        elif permanent:
            hard, status = True, None
        elif temporary:
            hard, status = False, None
        elif _SOFT_PHRASES.search(notice):
            hard, status = False, None
        else:
            hard, status = evidence, None
        found = self._first_valid(self._bounce_candidates(msg, parts, notice, copy))
        token, data = found if found else (None, None)
        addresses = sorted(a.decode("ascii", "replace") for a in (permanent or temporary))
        recipient = addresses[0] if addresses else None
        if recipient is None:
            for m in _ADDRESS.finditer(notice):
                candidate = m.group(1)
                if not self._verp.search(candidate + "@") and candidate.split("@")[0].lower() not in _DAEMON_LOCALS:
                    recipient = candidate
                    break
        reason = self._reason(notice, status) or (
            "message to the bounce address in a format not recognised" if not evidence else ""
        )
        return InboundResult(
            InboundKind.BOUNCE, token, data, hard=hard, status=status, reason=reason[:1000],
            recipient=recipient, **common,
        )

    @staticmethod
    def _reason(notice: str, status: str | None) -> str:
        lines = [ln.strip() for ln in notice.splitlines() if ln.strip()]
        for index, line in enumerate(lines):
            if (status and status in line) or _BASIC.search(line):
                words = re.findall(r"[A-Za-z]{3,}", re.sub(r"\S*[.@]\S*", "", line))
                if len(words) < 3 and index > 0:  # "<mx.example #5.1.1>": say what it means
                    return f"{lines[index - 1]} {line}"
                return line
        for line in lines:
            if re.search(r"user unknown|does not exist|no such|unknown user|not found|"
                         r"rejected|refused|quota|full|invalid|disabled|unavailable",
                         line, re.I):
                return line
        return lines[0] if lines else ""


def parse_inbound(
    raw: bytes | str | Message,
    signer: TokenSigner,
    *,
    bounce_local: str = "bounce",
    unsubscribe_local: str = "unsubscribe",
) -> InboundResult:
    """Classify one inbound message (see the module docstring)."""
    return InboundParser(signer, bounce_local=bounce_local, unsubscribe_local=unsubscribe_local).parse(raw)


def addresses_in(msg: Message, *names: str) -> list[str]:
    """Bare addresses in the given headers."""
    values = [str(v) for n in names for v in (msg.get_all(n) or [])]
    return [a for _n, a in getaddresses(values) if a]
