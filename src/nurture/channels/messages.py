"""The messages behind traces, for people to look at: which email or SMS a step sent, and
an email as it was sent (headers, rendered HTML, text part, raw source)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.channels.email.models import MailMessage
from nurture.channels.sms.models import SmsMessage
from nurture.errors import NotFound


@dataclass(frozen=True)
class MessageRef:
    channel: str  # "email" | "sms"
    id: int
    state: str
    summary: str  # the subject, or the SMS text


def messages_for_traces(session: Session, trace_ids: Sequence[int]) -> dict[int, MessageRef]:
    """The message each trace sent (two queries, whatever the number of traces)."""
    ids = list(trace_ids)
    found: dict[int, MessageRef] = {}
    if not ids:
        return found
    for trace_id, mid, state, subject in session.execute(
        select(MailMessage.trace_id, MailMessage.id, MailMessage.state, MailMessage.subject).where(
            MailMessage.trace_id.in_(ids)
        )
    ):
        found[int(trace_id)] = MessageRef("email", int(mid), str(state), str(subject or ""))
    for trace_id, mid, state, body in session.execute(
        select(SmsMessage.trace_id, SmsMessage.id, SmsMessage.state, SmsMessage.body).where(
            SmsMessage.trace_id.in_(ids)
        )
    ):
        found[int(trace_id)] = MessageRef("sms", int(mid), str(state), str(body or ""))
    return found


@dataclass(frozen=True)
class EmailView:
    id: int
    state: str
    headers: list[tuple[str, str]]
    html: str | None
    text: str | None
    raw: str


SHOWN_HEADERS = ("From", "To", "Reply-To", "Subject", "Date", "Message-ID", "List-Unsubscribe")


def email_view(session: Session, *, trace_id: int) -> EmailView:
    """The email a trace sent, parsed for display; NotFound when it sent none (yet)."""
    row = session.execute(
        select(MailMessage.id, MailMessage.state, MailMessage.raw).where(
            MailMessage.trace_id == trace_id
        )
    ).first()
    if row is None or row.raw is None:
        raise NotFound(f"step {trace_id} has no email message", field="trace_id")
    raw = bytes(row.raw)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    html_part = parsed.get_body(preferencelist=("html",))
    text_part = parsed.get_body(preferencelist=("plain",))
    return EmailView(
        id=int(row.id),
        state=str(row.state),
        headers=[(h, str(parsed[h])) for h in SHOWN_HEADERS if parsed[h] is not None],
        html=html_part.get_content() if isinstance(html_part, EmailMessage) else None,
        text=text_part.get_content() if isinstance(text_part, EmailMessage) else None,
        raw=raw.decode("utf-8", errors="replace"),
    )
