"""Inbound mail into the engine: one classified message → one event, immediately.

:func:`handle_inbound` is what the pipe command (``nurture inbound``), the SMTP listener
(``nurture inbound-smtp``) and IMAP polling (``nurture inbound-imap``) call for each message:

* a bounce (matched by its VERP address) → engine ``bounce`` event on the trace, the trace's
  ``failure_reason`` set (``mail_bounce_hard`` / ``mail_bounce_soft``), and the auto-blacklist
  rule (:mod:`.bounces`) applied to the address, counting the bounced messages sent to it;
* a reply (matched by In-Reply-To/References) → engine ``reply`` event;
* a mail to the ``List-Unsubscribe`` mailto address → unsubscribe (as the one-click POST);
* an auto-reply (vacation) or anything unknown → nothing (auto-replies are not replies).

A message naming a trace that no longer exists is handled (ignored). When the database is
unavailable :class:`~.inbound_smtp.InboundTemporaryError` is raised, so the MTA or the
listener's client retries (exit code 75, SMTP 451).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError

from nurture.campaigns.models import Activity
from nurture.channels.email import service
from nurture.channels.email.bounces import apply_auto_blacklist
from nurture.channels.email.context import email_context
from nurture.channels.email.inbound import InboundKind, InboundResult, parse_inbound
from nurture.channels.email.inbound_smtp import InboundTemporaryError
from nurture.channels.email.models import MailMessage
from nurture.engine.events import record_event
from nurture.engine.models import Trace
from nurture.tracking.tokens import KIND_MESSAGE, TokenSigner

log = logging.getLogger(__name__)



def _email_trace(session: Any, trace_id: int | None) -> Trace | None:
    if trace_id is None:
        return None
    trace = session.get(Trace, trace_id)
    if trace is None:
        return None
    activity = session.get(Activity, trace.activity_id)
    if activity is None or activity.activity_type != "email":
        return None
    result: Trace = trace
    return result


def key_problem(session: Any, signer: TokenSigner) -> str | None:
    """Why ``signer`` cannot be the server's key, or None.

    The newest message with a Message-ID (``<msg token@domain>``, the same token as its VERP
    return path) must verify and name its own trace: a process holding another key would
    match no bounce and no reply. With no message sent yet there is nothing to check.
    """
    row = session.execute(
        select(MailMessage.id, MailMessage.trace_id, MailMessage.message_id)
        .where(MailMessage.message_id != "")
        .order_by(MailMessage.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    token = str(row.message_id).strip().strip("<>").partition("@")[0]
    data = signer.verify(token, KIND_MESSAGE)
    if data is None or data.ids[:1] != (row.trace_id,):
        return (
            f"NURTURE_SECRET_KEY cannot verify the tokens of the messages the server sent "
            f"(message {row.id}): it is not the server's key"
        )
    return None


def handle_inbound(db: Any, raw: bytes, *, now: datetime) -> InboundResult:
    """Classify ``raw`` and record its effect (module docstring)."""
    ctx = email_context()
    extra = ctx.settings.extra
    result = parse_inbound(
        raw,
        ctx.signer,
        bounce_local=extra.get("NURTURE_BOUNCE_LOCAL", "bounce").strip() or "bounce",
    )
    if result.kind in (InboundKind.AUTO_REPLY, InboundKind.UNKNOWN) or result.trace_id is None:
        log.info("inbound %s: nothing to record (%s)", result.kind.value, result.subject[:80])
        return result
    try:
        with db.transaction() as session:
            _apply(session, result, now=now)
    except (OperationalError, DBAPIError) as exc:
        if isinstance(exc, OperationalError) or getattr(exc, "connection_invalidated", False):
            raise InboundTemporaryError(f"database unavailable: {exc}") from exc
        raise
    return result


def _apply(session: Any, result: InboundResult, *, now: datetime) -> None:
    trace_id = result.trace_id
    if result.kind is InboundKind.UNSUBSCRIBE:
        assert trace_id is not None
        service.unsubscribe(session, trace_id=trace_id, now=now, reason="Unsubscribed by email", one_click=True)
        return
    trace = _email_trace(session, trace_id)
    if trace is None:
        log.info("inbound %s for unknown trace %s ignored", result.kind.value, trace_id)
        return
    if result.kind is InboundKind.BOUNCE:
        record_event(session, trace_id=trace.id, event="bounce", now=now)
        trace = session.get(Trace, trace.id)
        assert trace is not None
        trace.failure_reason = "mail_bounce_hard" if result.hard else "mail_bounce_soft"
        message = session.scalar(select(MailMessage).where(MailMessage.trace_id == trace.id))
        if message is not None:
            message.failure_reason = (result.reason or result.status or "bounced")[:1000]
            session.flush()
            apply_auto_blacklist(session, email=message.email, now=now)
    elif result.kind is InboundKind.REPLY:
        record_event(session, trace_id=trace.id, event="reply", now=now)
