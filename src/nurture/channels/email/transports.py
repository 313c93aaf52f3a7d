"""Transports: one interface, ``send(message, *, envelope_from, recipients) -> SendResult``.

* :class:`SmtpTransport` — from ``NURTURE_SMTP_URL``::

      smtp://user:pass@host:587?starttls=1      STARTTLS required
      smtp://host:25                            STARTTLS used when offered (starttls=auto)
      smtp://host:25?starttls=0                 plain
      smtps://user:pass@host:465                implicit TLS

  Other query parameters: ``timeout`` (seconds, default 30), ``pool`` (idle connections
  kept, default 2), ``max_per_connection`` (messages before a fresh connection, default
  100), ``verify=0`` (do not verify the server certificate: local relays with self-signed
  certificates only), ``helo`` (the name announced in EHLO). User and password are
  percent-decoded.

  Connections are reused across messages (a small LIFO pool, thread-safe; make one
  transport per worker process — a pool must not be shared across a fork). A pooled
  connection that turns out to be dead before the message is handed over (the server
  dropped it while idle) is replaced by a new one and the message is tried once more.
  Outcomes: 2xx → ``sent``; 4xx, a lost connection, a timeout, a refused connection, an
  authentication or TLS problem (a configuration error that must not fail the messages) →
  ``temporary``; 5xx → ``permanent``.

* :class:`MemoryOutbox` — keeps every message in memory (tests, previews; the database
  outbox, viewable in the UI, comes with the message table).

:func:`retry_delay` gives the wait before the next attempt after a temporary failure.
"""

from __future__ import annotations

import email
import email.policy
import random
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from enum import StrEnum
from typing import Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from nurture.channels.email.mime import POLICY
from nurture.config import ConfigError, Settings, parse_bool

# --------------------------------------------------------------------------- results


class Outcome(StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    reason: str = ""
    code: int | None = None
    # recipients the server refused while accepting others: address -> (code, reply)
    refused: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SENT


SENT = SendResult(Outcome.SENT)


class Transport(Protocol):
    name: str

    def send(
        self, message: EmailMessage | bytes, *, envelope_from: str, recipients: Sequence[str]
    ) -> SendResult: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- retry policy

RETRY_BASE_SECONDS = 60.0
RETRY_CAP_SECONDS = 6 * 3600.0
MAX_ATTEMPTS = 10  # ~ 60s, 2m, 4m, 8m, … capped at 6h: about 1.5 days in all


def retry_delay(
    attempt: int,
    *,
    base: float = RETRY_BASE_SECONDS,
    cap: float = RETRY_CAP_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 = the first send).

    Exponential (``base * 2**(attempt-1)``) capped at ``cap``, with "equal jitter": a
    uniformly random value between half the delay and the full delay, so a burst of
    failures (a relay down for a minute) does not retry in lockstep.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    exp = min(cap, base * (2.0 ** min(attempt - 1, 64)))
    r = (rng or random).random()
    return exp / 2 + r * exp / 2


def should_retry(attempt: int, max_attempts: int = MAX_ATTEMPTS) -> bool:
    """Whether a message that failed temporarily on attempt ``attempt`` gets another one."""
    return attempt < max_attempts


FAILURE_SMTP = "mail_smtp"  # the trace failure type of a refused or undeliverable message


@dataclass(frozen=True)
class Delivery:
    """What to do with a message after one send attempt.

    ``state``: ``sent``; ``retry`` (keep it queued until ``retry_at``); or ``failed`` (the
    message row is failed and the trace set to ``error`` with ``failure_type`` — a send-time
    bounce).
    """

    state: Literal["sent", "retry", "failed"]
    reason: str = ""
    failure_type: str | None = None
    retry_at: datetime | None = None


def decide(
    result: SendResult,
    attempt: int,
    now: datetime,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    rng: random.Random | None = None,
) -> Delivery:
    """Map a transport result of attempt number ``attempt`` (from 1) to a :class:`Delivery`."""
    if result.outcome is Outcome.SENT:
        return Delivery("sent", result.reason)
    if result.outcome is Outcome.TEMPORARY and should_retry(attempt, max_attempts):
        delay = retry_delay(attempt, rng=rng)
        return Delivery("retry", result.reason, retry_at=now + timedelta(seconds=delay))
    reason = result.reason
    if result.outcome is Outcome.TEMPORARY:
        reason = f"gave up after {attempt} attempts: {reason}"
    return Delivery("failed", reason, failure_type=FAILURE_SMTP)


# --------------------------------------------------------------------------- memory outbox


def wire_bytes(message: EmailMessage | bytes, *, utf8: bool = False) -> bytes:
    """What goes after DATA: the bytes as given, or the message serialised with CRLF."""
    if isinstance(message, bytes):
        return message
    return message.as_bytes(policy=POLICY.clone(utf8=True) if utf8 else POLICY)


@dataclass(frozen=True)
class OutboxEntry:
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes
    sent_at: datetime

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class MemoryOutbox:
    """Records messages instead of sending them."""

    name = "outbox"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[OutboxEntry] = []

    def send(
        self, message: EmailMessage | bytes, *, envelope_from: str, recipients: Sequence[str]
    ) -> SendResult:
        if not recipients:
            return SendResult(Outcome.PERMANENT, "no recipients")
        entry = OutboxEntry(
            envelope_from=envelope_from,
            recipients=tuple(recipients),
            raw=wire_bytes(message),
            sent_at=datetime.now(UTC),
        )
        with self._lock:
            self.entries.append(entry)
        return SENT

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- smtp

StartTls = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: StartTls = "auto"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    pool_size: int = 2
    max_per_connection: int = 100
    verify: bool = True
    helo: str | None = None

    def __repr__(self) -> str:  # never print the password
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port}, implicit_tls={self.implicit_tls}, "
            f"starttls={self.starttls!r}, username={self.username!r})"
        )


def _flag(name: str, value: str) -> bool:
    return parse_bool(f"NURTURE_SMTP_URL: {name}", value)


def parse_smtp_url(url: str) -> SmtpConfig:
    """Parse ``smtp://`` / ``smtps://`` URLs; raises :class:`ConfigError` naming the problem."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ConfigError(f"NURTURE_SMTP_URL: expected smtp:// or smtps://, got {scheme or url!r}")
    if not parts.hostname:
        raise ConfigError("NURTURE_SMTP_URL: a host is required, like smtp://mail.example.com:587")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("NURTURE_SMTP_URL: invalid port") from None
    implicit = scheme == "smtps"
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    known = {"starttls", "timeout", "pool", "max_per_connection", "verify", "helo"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise ConfigError(f"NURTURE_SMTP_URL: unknown parameter(s) {unknown}; known: {sorted(known)}")
    starttls: StartTls = "auto"
    if "starttls" in query:
        if query["starttls"].strip().lower() == "auto":
            starttls = "auto"
        else:
            starttls = "always" if _flag("starttls", query["starttls"]) else "never"
    if implicit and starttls == "always":
        raise ConfigError("NURTURE_SMTP_URL: smtps:// already uses TLS; drop starttls=1")
    try:
        timeout = float(query.get("timeout", "30"))
        pool = int(query.get("pool", "2"))
        per_conn = int(query.get("max_per_connection", "100"))
    except ValueError as exc:
        raise ConfigError(f"NURTURE_SMTP_URL: {exc}") from None
    if timeout <= 0 or pool < 1 or per_conn < 1:
        raise ConfigError("NURTURE_SMTP_URL: timeout, pool and max_per_connection must be positive")
    return SmtpConfig(
        host=parts.hostname,
        port=port or (465 if implicit else 25),
        implicit_tls=implicit,
        starttls="never" if implicit else starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        timeout=timeout,
        pool_size=pool,
        max_per_connection=per_conn,
        verify=_flag("verify", query.get("verify", "1")),
        helo=query.get("helo") or None,
    )


class _SetupError(Exception):
    """Connecting, TLS or authentication failed (the message was not handed over)."""


@dataclass
class _Connection:
    smtp: smtplib.SMTP
    created: float
    sent: int = 0


def _classify(code: int, reply: bytes | str) -> SendResult:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    reason = f"{code} {text}".strip()
    if 200 <= code < 300:
        return SendResult(Outcome.SENT, reason, code)
    if 400 <= code < 500:
        return SendResult(Outcome.TEMPORARY, reason, code)
    if 500 <= code < 600:
        return SendResult(Outcome.PERMANENT, reason, code)
    return SendResult(Outcome.TEMPORARY, f"unexpected reply: {reason}", code)


class SmtpTransport:
    name = "smtp"

    def __init__(self, config: SmtpConfig, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
        self.connections_opened = 0  # for tests and metrics

    @classmethod
    def from_url(cls, url: str) -> SmtpTransport:
        return cls(parse_smtp_url(url))

    # connections -------------------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is not None:
            return self._ssl_context
        context = ssl.create_default_context()
        if not self.config.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> _Connection:
        cfg = self.config
        smtp: smtplib.SMTP | None = None
        try:
            if cfg.implicit_tls:
                smtp = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, local_hostname=cfg.helo, timeout=cfg.timeout,
                    context=self._context(),
                )
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, local_hostname=cfg.helo, timeout=cfg.timeout)
            smtp.ehlo_or_helo_if_needed()
            if not cfg.implicit_tls and cfg.starttls != "never":
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                elif cfg.starttls == "always":
                    raise _SetupError("the server does not offer STARTTLS (starttls=1 requires it)")
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
        except _SetupError:
            self._quit(smtp)
            raise
        except smtplib.SMTPAuthenticationError as exc:
            self._quit(smtp)
            raise _SetupError(f"SMTP authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            self._quit(smtp)
            raise _SetupError(f"SMTP server does not support a required feature: {exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            self._quit(smtp)
            raise _SetupError(f"cannot connect to {cfg.host}:{cfg.port}: {type(exc).__name__}: {exc}") from None
        self.connections_opened += 1
        return _Connection(smtp, time.monotonic())

    @staticmethod
    def _quit(smtp: smtplib.SMTP | None) -> None:
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def _acquire(self) -> tuple[_Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _release(self, conn: _Connection) -> None:
        if conn.sent >= self.config.max_per_connection:
            self._quit(conn.smtp)
            return
        with self._lock:
            if len(self._idle) < self.config.pool_size:
                self._idle.append(conn)
                return
        self._quit(conn.smtp)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._quit(conn.smtp)

    # sending -----------------------------------------------------------------------
    def send(
        self, message: EmailMessage | bytes, *, envelope_from: str, recipients: Sequence[str]
    ) -> SendResult:
        """Send ``message`` (wire bytes as built by :mod:`.mime`, or an EmailMessage)."""
        if not recipients:
            return SendResult(Outcome.PERMANENT, "no recipients")
        international = not all(a.isascii() for a in (envelope_from, *recipients))
        raw = wire_bytes(message, utf8=international)
        result = SendResult(Outcome.TEMPORARY, "not attempted")
        for _try in range(2):
            try:
                conn, reused = self._acquire()
            except _SetupError as exc:
                return SendResult(Outcome.TEMPORARY, str(exc))
            result, stale = self._transaction(conn, raw, envelope_from, recipients, international)
            if not (stale and reused):
                return result
            # The pooled connection had died while idle (server timeout or restart): the
            # other idle ones are likely dead too. Drop them and retry on a fresh one.
            self.close()
        return result

    def _transaction(
        self,
        conn: _Connection,
        raw: bytes,
        envelope_from: str,
        recipients: Sequence[str],
        international: bool,
    ) -> tuple[SendResult, bool]:
        """(result, stale): stale means the connection was dead before MAIL FROM was accepted."""
        smtp = conn.smtp
        handed_over = False
        try:
            options: list[str] = []
            if international:
                if not smtp.has_extn("smtputf8"):
                    self._reset_or_drop(conn)
                    return SendResult(Outcome.PERMANENT, "the server does not support SMTPUTF8 "
                                      "(needed for a non-ASCII address)"), False
                options.append("SMTPUTF8")
            if smtp.does_esmtp and smtp.has_extn("8bitmime") and not raw.isascii():
                options.append("BODY=8BITMIME")
            if smtp.has_extn("pipelining"):
                return self._pipelined(conn, raw, envelope_from, recipients, options)
            code, reply = smtp.mail(envelope_from, options)
            if code == 421:  # "closing transmission channel" (e.g. idle timeout)
                self._drop(conn)
                return _classify(code, reply), True
            if code != 250:
                self._reset_or_drop(conn)
                return _classify(code, reply), False
            handed_over = True
            refused: dict[str, tuple[int, str]] = {}
            last: SendResult | None = None
            for rcpt in recipients:
                code, reply = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = (code, _text(reply))
                    last = _classify(code, reply)
            if len(refused) == len(recipients):
                self._reset_or_drop(conn)
                assert last is not None
                return last, False
            code, reply = smtp.data(raw)
            return self._finish(conn, code, reply, refused), False
        except smtplib.SMTPDataError as exc:  # DATA itself refused (not 354)
            self._reset_or_drop(conn)
            return _classify(exc.smtp_code, exc.smtp_error), False
        except smtplib.SMTPResponseException as exc:
            self._drop(conn)
            return _classify(exc.smtp_code, exc.smtp_error), False
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop(conn)
            reason = f"connection lost: {type(exc).__name__}: {exc}".rstrip(": ")
            return SendResult(Outcome.TEMPORARY, reason), not handed_over
        except smtplib.SMTPException as exc:
            self._drop(conn)
            return SendResult(Outcome.TEMPORARY, f"{type(exc).__name__}: {exc}"), False

    def _pipelined(
        self,
        conn: _Connection,
        raw: bytes,
        envelope_from: str,
        recipients: Sequence[str],
        options: Sequence[str],
    ) -> tuple[SendResult, bool]:
        """RFC 2920: MAIL, every RCPT and DATA in one write, then the content.

        Two round trips per message instead of 3 + recipients. Replies come back in
        command order; a refused MAIL or every RCPT refused makes the server refuse DATA
        too (503/554), which is read and followed by RSET. Errors propagate to
        :meth:`_transaction`'s handlers (a lost connection before MAIL's reply is "stale").
        """
        smtp = conn.smtp
        lines = [f"MAIL FROM:{_envelope(envelope_from)}{''.join(' ' + o for o in options)}"]
        lines += [f"RCPT TO:{_envelope(r)}" for r in recipients]
        lines.append("DATA")
        smtp.send(("\r\n".join(lines) + "\r\n").encode("utf-8"))
        code, reply = smtp.getreply()
        if code == 421:  # "closing transmission channel" (e.g. idle timeout)
            self._drop(conn)
            return _classify(code, reply), True
        try:
            return self._pipelined_rest(conn, raw, recipients, None if code == 250 else _classify(code, reply))
        except (smtplib.SMTPServerDisconnected, OSError) as exc:  # MAIL was answered: not stale
            self._drop(conn)
            reason = f"connection lost: {type(exc).__name__}: {exc}".rstrip(": ")
            return SendResult(Outcome.TEMPORARY, reason), False

    def _pipelined_rest(
        self, conn: _Connection, raw: bytes, recipients: Sequence[str], mail_result: SendResult | None
    ) -> tuple[SendResult, bool]:
        smtp = conn.smtp
        refused: dict[str, tuple[int, str]] = {}
        last: SendResult | None = None
        for rcpt in recipients:
            code, reply = smtp.getreply()
            if code not in (250, 251):
                refused[rcpt] = (code, _text(reply))
                last = _classify(code, reply)
        code, reply = smtp.getreply()  # DATA
        if code != 354:
            self._reset_or_drop(conn)
            if mail_result is not None:
                return mail_result, False
            if len(refused) == len(recipients) and last is not None:
                return last, False
            return _classify(code, reply), False
        if mail_result is not None or len(refused) == len(recipients):
            # A server that answered 354 anyway: end the (empty) data and report the refusal.
            smtp.send(b".\r\n")
            smtp.getreply()
            self._reset_or_drop(conn)
            return (mail_result or last or _classify(code, reply)), False
        body = _DOT_LINE.sub(b"..", raw)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        smtp.send(body + b".\r\n")
        code, reply = smtp.getreply()
        return self._finish(conn, code, reply, refused), False

    def _finish(
        self, conn: _Connection, code: int, reply: bytes, refused: dict[str, tuple[int, str]]
    ) -> SendResult:
        """The server's answer to the end of the data: the message's outcome."""
        conn.sent += 1
        if code != 250:
            self._reset_or_drop(conn)
            return _classify(code, reply)
        self._release(conn)
        return SendResult(Outcome.SENT, f"{code} {_text(reply)}".strip(), code, refused)

    def _reset_or_drop(self, conn: _Connection) -> None:
        try:
            conn.smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop(conn)
            return
        self._release(conn)

    def _drop(self, conn: _Connection) -> None:
        try:
            conn.smtp.close()
        except OSError:
            pass


_DOT_LINE = re.compile(rb"(?m)^\.")  # dot-stuffing (RFC 5321 4.5.2)
_PLAIN_ADDRESS = re.compile(r"[^<>()\[\]\\,;:\s\"]*")


def _envelope(address: str) -> str:
    """``<address>`` for MAIL/RCPT: a plain address as it is, anything else via smtplib."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def transport_from_settings(settings: Settings) -> Transport:
    """``smtp`` when ``NURTURE_SMTP_URL`` is set, else the in-memory outbox placeholder."""
    url = settings.extra.get("NURTURE_SMTP_URL", "").strip()
    if url:
        return SmtpTransport.from_url(url)
    return MemoryOutbox()
