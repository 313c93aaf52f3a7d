"""IMAP polling for inbound mail (``NURTURE_IMAP_URL``), independent of how it is recorded.

URL forms::

    imaps://user:pass@imap.example.com/INBOX          implicit TLS (port 993)
    imap://user:pass@imap.example.com:143/Bounces?starttls=1
    imap://user:pass@127.0.0.1:1143?keep=1            mark as seen instead of deleting

Other parameters: ``timeout`` (seconds, default 30), ``verify=0`` (do not verify the server
certificate), ``limit`` (messages per poll, default 500).

:func:`poll_imap` fetches the unseen messages of the folder (``BODY.PEEK[]``, so a failure
leaves them unseen) and hands each to ``on_message``. After it returned, the message is
deleted (or, with ``keep=1``, flagged ``\\Seen``). When it raises
:class:`~.inbound_smtp.InboundTemporaryError` (the database is down), polling stops and the
message stays for the next poll; any other error is logged and the message flagged
``\\Seen`` without deleting it, so one malformed message cannot block the mailbox.
"""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from nurture.channels.email.inbound_smtp import InboundTemporaryError
from nurture.config import ConfigError, parse_bool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    username: str
    password: str
    implicit_tls: bool = True
    starttls: bool = False
    folder: str = "INBOX"
    keep: bool = False
    timeout: float = 30.0
    verify: bool = True
    limit: int = 500

    def __repr__(self) -> str:  # never print the password
        return f"ImapConfig(host={self.host!r}, port={self.port}, user={self.username!r}, folder={self.folder!r})"


def _flag(name: str, value: str) -> bool:
    return parse_bool(f"NURTURE_IMAP_URL: {name}", value)


def parse_imap_url(url: str) -> ImapConfig:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("imap", "imaps"):
        raise ConfigError(f"NURTURE_IMAP_URL: expected imap:// or imaps://, got {scheme or url!r}")
    if not parts.hostname or not parts.username:
        raise ConfigError("NURTURE_IMAP_URL: host and user are required, like imaps://user:pass@host/INBOX")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    known = {"starttls", "keep", "timeout", "verify", "limit"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise ConfigError(f"NURTURE_IMAP_URL: unknown parameter(s) {unknown}; known: {sorted(known)}")
    try:
        port = parts.port
        timeout = float(query.get("timeout", "30"))
        limit = int(query.get("limit", "500"))
    except ValueError as exc:
        raise ConfigError(f"NURTURE_IMAP_URL: {exc}") from None
    implicit = scheme == "imaps"
    starttls = _flag("starttls", query.get("starttls", "0"))
    if implicit and starttls:
        raise ConfigError("NURTURE_IMAP_URL: imaps:// already uses TLS; drop starttls=1")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapConfig(
        host=parts.hostname,
        port=port or (993 if implicit else 143),
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
        implicit_tls=implicit,
        starttls=starttls,
        folder=folder,
        keep=_flag("keep", query.get("keep", "0")),
        timeout=timeout,
        verify=_flag("verify", query.get("verify", "1")),
        limit=max(1, limit),
    )


@dataclass(frozen=True)
class PollResult:
    handled: int
    failed: int  # flagged seen after an unexpected error
    deferred: bool  # stopped on a temporary error; the rest waits for the next poll


def _context(config: ImapConfig, given: ssl.SSLContext | None) -> ssl.SSLContext:
    if given is not None:
        return given
    context = ssl.create_default_context()
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _quote_mailbox(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _raw_of(data: list[object]) -> bytes | None:
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def poll_imap(
    config: ImapConfig,
    on_message: Callable[[bytes], None],
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> PollResult:
    """One poll of the folder; raises ``imaplib.IMAP4.error``/``OSError`` if it cannot connect."""
    client: imaplib.IMAP4
    if config.implicit_tls:
        client = imaplib.IMAP4_SSL(
            config.host, config.port, ssl_context=_context(config, ssl_context), timeout=config.timeout
        )
    else:
        client = imaplib.IMAP4(config.host, config.port, timeout=config.timeout)
        if config.starttls:
            client.starttls(ssl_context=_context(config, ssl_context))
    handled = failed = 0
    deferred = False
    try:
        client.login(config.username, config.password)
        status, _ = client.select(_quote_mailbox(config.folder))
        if status != "OK":
            raise imaplib.IMAP4.error(f"cannot select folder {config.folder!r}")
        status, found = client.uid("SEARCH", "UNSEEN")
        uids = found[0].split() if status == "OK" and found and isinstance(found[0], bytes) else []
        for uid in uids[: config.limit]:
            if not re.fullmatch(rb"\d+", uid):
                continue
            status, data = client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
            raw = _raw_of(list(data)) if status == "OK" else None
            if raw is None:
                continue
            try:
                on_message(raw)
            except InboundTemporaryError as exc:
                log.warning("IMAP polling deferred: %s", exc)
                deferred = True
                break
            except Exception:
                log.exception("inbound message %s could not be handled; flagged seen", uid.decode())
                client.uid("STORE", uid.decode(), "+FLAGS", "(\\Seen)")
                failed += 1
                continue
            flags = "(\\Seen)" if config.keep else "(\\Seen \\Deleted)"
            client.uid("STORE", uid.decode(), "+FLAGS", flags)
            handled += 1
        if handled and not config.keep:
            client.expunge()
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return PollResult(handled, failed, deferred)
