"""An aiosmtpd handler for tests: records messages, answers RCPT/DATA as scripted."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    peer: Any
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: bytes | None = None


@dataclass
class Sink:
    """aiosmtpd handler: records messages; optional scripted RCPT / DATA answers."""

    received: list[Received] = field(default_factory=list)
    rcpt_answers: list[str] = field(default_factory=list)  # consumed one per RCPT
    data_answers: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Advertise PIPELINING (RFC 2920): aiosmtpd reads commands one line at a time, so a
    # client's pipelined group is served in order like any other.
    pipelining: bool = False

    async def handle_EHLO(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            answer = self.rcpt_answers.pop(0) if self.rcpt_answers else "250 OK"
        if answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return answer

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        with self.lock:
            answer = self.data_answers.pop(0) if self.data_answers else "250 2.0.0 Message accepted"
        if answer.startswith("250"):
            content = envelope.original_content or b""
            login = session.auth_data if isinstance(session.auth_data, bytes) else None
            self.received.append(
                Received(session.peer, str(envelope.mail_from), list(envelope.rcpt_tos), content, login)
            )
        return answer

    @property
    def peers(self) -> set[Any]:
        return {r.peer for r in self.received}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
