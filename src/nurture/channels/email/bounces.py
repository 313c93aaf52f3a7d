"""The auto-blacklist rule (SPEC §6, Odoo's ``mail.thread`` bounce limit).

An address is blacklisted automatically when it bounced at least ``limit`` (5) times within
the last ``window`` (13 weeks) **and** those bounces span more than ``min_span`` (a week):
five bounces in one afternoon (a receiving server down for a day) do not blacklist anyone.
The caller passes the bounce times it counts (Odoo counts every bounce trace; soft bounces
included). :func:`apply_auto_blacklist` applies it to an address after a bounce.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from nurture.channels.email.models import MailMessage
from nurture.engine.models import Trace
from nurture.records import blacklists

AUTO_BLACKLIST_LIMIT = 5
AUTO_BLACKLIST_WINDOW = timedelta(weeks=13)
AUTO_BLACKLIST_MIN_SPAN = timedelta(weeks=1)
AUTO_BLACKLIST_REASON = "Auto-blacklisted: repeated bounces"


def should_auto_blacklist(
    bounce_times: Iterable[datetime],
    now: datetime,
    *,
    limit: int = AUTO_BLACKLIST_LIMIT,
    window: timedelta = AUTO_BLACKLIST_WINDOW,
    min_span: timedelta = AUTO_BLACKLIST_MIN_SPAN,
) -> bool:
    recent = sorted(t for t in bounce_times if timedelta(0) <= now - t <= window)
    return len(recent) >= limit and recent[-1] - recent[0] > min_span


def apply_auto_blacklist(session: Any, *, email: str, now: datetime) -> bool:
    """Blacklist ``email`` when its bounced messages meet the rule; True when it did."""
    times = [
        t
        for t in session.scalars(
            select(Trace.bounced_at)
            .join(MailMessage, MailMessage.trace_id == Trace.id)
            .where(MailMessage.email == email, Trace.bounced_at.is_not(None))
        )
        if t is not None
    ]
    if not should_auto_blacklist(times, now):
        return False
    if blacklists.is_email_blacklisted(session=session, email=email):
        return False
    blacklists.blacklist_email(
        session=session, email=email, now=now, reason=AUTO_BLACKLIST_REASON, source="bounce"
    )
    return True
