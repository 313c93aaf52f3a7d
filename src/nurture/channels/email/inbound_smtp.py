"""The inbound SMTP listener's handler (aiosmtpd), independent of how messages are recorded.

``nurture inbound-smtp`` (wired with the database next) runs :func:`start_listener` with an
``on_message`` callback that classifies the message (:func:`.inbound.parse_inbound`) and
records the result. The handler:

* accepts recipients only in ``accept_domains`` when given (``550 5.1.2`` otherwise), so the
  listener is not an open relay for arbitrary domains;
* refuses messages over ``max_size`` (``552 5.3.4``);
* runs ``on_message`` in a worker thread (database work is synchronous) and answers
  ``250`` once it returned; when it raises — :class:`InboundTemporaryError` (e.g. the
  database is unavailable) or anything unexpected — it answers ``451 4.3.0`` so the
  sending MTA keeps the message and retries: inbound mail is never dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 10 * 1024 * 1024


class InboundTemporaryError(Exception):
    """The message could not be handled now; the sender should retry later."""


@dataclass(frozen=True)
class InboundEnvelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    peer: str


OnMessage = Callable[[InboundEnvelope], None]


class InboundHandler:
    def __init__(
        self,
        on_message: OnMessage,
        *,
        accept_domains: Collection[str] | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self.on_message = on_message
        self.accept_domains = {d.lower().rstrip(".") for d in accept_domains} if accept_domains else None
        self.max_size = max_size

    async def handle_RCPT(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if self.accept_domains is not None and domain not in self.accept_domains:
            return "550 5.1.2 Recipient domain not handled here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if len(raw) > self.max_size:
            return "552 5.3.4 Message too big"
        peer: Any = session.peer
        item = InboundEnvelope(
            mail_from="" if envelope.mail_from in (None, "<>") else str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            peer=str(peer[0]) if isinstance(peer, tuple) and peer else str(peer),
        )
        try:
            await asyncio.to_thread(self.on_message, item)
        except InboundTemporaryError as exc:
            log.warning("inbound message deferred: %s", exc)
            return "451 4.3.0 Temporary failure, please retry"
        except Exception:
            log.exception("inbound message handling failed; deferred")
            return "451 4.3.0 Temporary failure, please retry"
        return "250 2.0.0 OK"


def start_listener(
    on_message: OnMessage,
    *,
    host: str = "127.0.0.1",
    port: int = 2525,
    accept_domains: Collection[str] | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Controller:
    """Start the listener in a background thread; call ``.stop()`` on the result to stop."""
    handler = InboundHandler(on_message, accept_domains=accept_domains, max_size=max_size)
    controller = Controller(
        handler, hostname=host, port=port, data_size_limit=max_size, enable_SMTPUTF8=True
    )
    controller.start()
    return controller
