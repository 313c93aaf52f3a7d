"""The auto-blacklist rule (SPEC §6, Odoo's ``mail.thread`` bounce limit).

An address is blacklisted automatically when it bounced at least ``limit`` (5) times within
the last ``window`` (13 weeks) **and** those bounces span more than ``min_span`` (a week):
five bounces in one afternoon (a receiving server down for a day) do not blacklist anyone.
The caller passes the bounce times it counts (Odoo counts every bounce trace; soft bounces
included).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

AUTO_BLACKLIST_LIMIT = 5
AUTO_BLACKLIST_WINDOW = timedelta(weeks=13)
AUTO_BLACKLIST_MIN_SPAN = timedelta(weeks=1)


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
