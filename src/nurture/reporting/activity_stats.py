"""Per-activity figures of a campaign (SPEC §9): trace counts by state, message figures of
email and SMS steps, and a daily series of processed / rejected traces.

Set-wise: :func:`activity_stats` runs exactly two statements whatever the number of
activities — one grouped count over the campaign's traces, one grouped daily series over
the window. Test participants' traces are left out everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from nurture.engine.models import Trace

#: the message figures, in display order (each counts traces whose timestamp is set)
MESSAGE_EVENTS = ("sent", "opened", "clicked", "replied", "bounced")
TRACE_COUNTS = ("scheduled", "processed", "rejected", "canceled", "error")
DEFAULT_DAYS = 15


@dataclass(frozen=True)
class DayFigures:
    day: date
    processed: int
    rejected: int


@dataclass(frozen=True)
class ActivityFigures:
    """Figures of one activity (real participants only)."""

    activity_id: int
    scheduled: int = 0
    processed: int = 0
    rejected: int = 0
    canceled: int = 0
    error: int = 0
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    bounced: int = 0
    daily: tuple[DayFigures, ...] = ()

    def count(self, event: str) -> int:
        if event not in MESSAGE_EVENTS:
            raise ValueError(f"unknown message event {event!r} (known: {', '.join(MESSAGE_EVENTS)})")
        value: int = getattr(self, event)
        return value

    def rate(self, event: str) -> float:
        """``event`` as a percentage of sent messages (0 when nothing was sent)."""
        return round(100.0 * self.count(event) / self.sent, 1) if self.sent else 0.0


@dataclass(frozen=True)
class CampaignActivityStats:
    """The figures of every activity of a campaign over ``days`` days ending ``today``."""

    campaign_id: int
    days: tuple[date, ...]
    figures: dict[int, ActivityFigures] = field(default_factory=dict)

    def get(self, activity_id: int) -> ActivityFigures:
        """Figures of ``activity_id`` (zeros for an activity without traces)."""
        found = self.figures.get(activity_id)
        if found is not None:
            return found
        empty = tuple(DayFigures(d, 0, 0) for d in self.days)
        return ActivityFigures(activity_id=activity_id, daily=empty)

    def __iter__(self) -> Iterator[ActivityFigures]:
        return iter(self.figures.values())


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def activity_counts(*, session: Session, campaign_id: int) -> dict[int, ActivityFigures]:
    """Trace counts by state and message figures of every activity of ``campaign_id`` that has
    traces, in one statement (no daily series)."""
    columns: list[Any] = [
        func.sum(case((Trace.state == state, 1), else_=0)) for state in TRACE_COUNTS
    ]
    columns += [func.count(getattr(Trace, f"{event}_at")) for event in MESSAGE_EVENTS]
    stmt = (
        select(Trace.activity_id, *columns)
        .where(Trace.campaign_id == campaign_id, Trace.is_test.is_(False))
        .group_by(Trace.activity_id)
    )
    figures: dict[int, ActivityFigures] = {}
    for row in session.execute(stmt):
        values = (int(v or 0) for v in row[1:])
        named = dict(zip((*TRACE_COUNTS, *MESSAGE_EVENTS), values, strict=True))
        figures[int(row[0])] = ActivityFigures(activity_id=int(row[0]), daily=(), **named)
    return figures


def activity_stats(
    *, session: Session, campaign_id: int, now: datetime, days: int = DEFAULT_DAYS
) -> CampaignActivityStats:
    """Counts (:func:`activity_counts`) and the ``days``-day daily series (ending on ``now``'s
    day) of every activity of ``campaign_id``, in two statements. Days are UTC calendar days."""
    if days < 1:
        raise ValueError("days must be at least 1")
    today = now.date()
    window = tuple(today - timedelta(days=days - 1 - i) for i in range(days))
    start = datetime.combine(window[0], time.min)
    end = datetime.combine(today + timedelta(days=1), time.min)
    counts = activity_counts(session=session, campaign_id=campaign_id)

    day = func.date(Trace.executed_at)
    series: dict[int, dict[date, tuple[int, int]]] = {}
    for activity_id, on, processed, rejected in session.execute(
        select(
            Trace.activity_id,
            day,
            func.sum(case((Trace.state == "processed", 1), else_=0)),
            func.sum(case((Trace.state == "rejected", 1), else_=0)),
        )
        .where(
            Trace.campaign_id == campaign_id,
            Trace.is_test.is_(False),
            Trace.state.in_(("processed", "rejected")),
            Trace.executed_at >= start,
            Trace.executed_at < end,
        )
        .group_by(Trace.activity_id, day)
    ):
        by_day = series.setdefault(int(activity_id), {})
        by_day[_as_date(on)] = (int(processed or 0), int(rejected or 0))

    figures: dict[int, ActivityFigures] = {}
    for activity_id, counted in counts.items():
        by_day = series.get(activity_id, {})
        daily = tuple(DayFigures(d, *by_day.get(d, (0, 0))) for d in window)
        figures[activity_id] = replace(counted, daily=daily)
    return CampaignActivityStats(campaign_id=campaign_id, days=window, figures=figures)
