"""Per-activity figures (reporting.activity_stats): counts, message figures and the daily
series, from history the engine made; two statements whatever the number of activities."""

from __future__ import annotations

from datetime import datetime

import pytest

from nurture.campaigns import activities as activity_service
from nurture.db import Database
from nurture.reporting.activity_stats import activity_stats
from tests.ui.conftest import count_sql

from .history import DAY, make_history

START = datetime(2026, 3, 2, 9, 0, 0)
NOW = START + 3 * DAY


def test_counts_and_message_figures(db: Database) -> None:
    h = make_history(db, start=START)
    with db.read() as s:
        stats = activity_stats(session=s, campaign_id=h.campaign_id, now=NOW)
    welcome = stats.get(h.welcome)
    # six real contacts; the test participant's send and click are left out
    assert (welcome.processed, welcome.rejected) == (6, 0)
    assert (welcome.sent, welcome.opened, welcome.clicked, welcome.replied, welcome.bounced) == (6, 3, 1, 1, 1)
    assert welcome.rate("opened") == 50.0 and welcome.rate("clicked") == pytest.approx(16.7)
    assert stats.get(h.opened).processed == 3
    reminder = stats.get(h.reminder)
    assert (reminder.processed, reminder.sent, reminder.canceled) == (2, 2, 4)  # opened or bounced
    paris = stats.get(h.paris)
    assert (paris.processed, paris.rejected) == (1, 1)
    assert paris.sent == 0 and paris.rate("sent") == 0.0


def test_daily_series_covers_fifteen_days_ending_today(db: Database) -> None:
    h = make_history(db, start=START)
    with db.read() as s:
        stats = activity_stats(session=s, campaign_id=h.campaign_id, now=NOW)
    assert len(stats.days) == 15 and stats.days[-1] == NOW.date()
    welcome = stats.get(h.welcome)
    assert [(d.day, d.processed) for d in welcome.daily if d.processed] == [(START.date(), 6)]
    paris = stats.get(h.paris).daily
    assert [(d.day, d.processed, d.rejected) for d in paris if d.processed or d.rejected] == [
        ((START + 2 * DAY).date(), 1, 1)
    ]
    # later, the start day falls out of the window
    with db.read() as s:
        later = activity_stats(session=s, campaign_id=h.campaign_id, now=START + 20 * DAY)
    assert sum(d.processed for d in later.get(h.welcome).daily) == 0
    assert later.get(h.welcome).processed == 6  # the totals are not windowed


def test_activity_without_traces_has_zeros(db: Database) -> None:
    h = make_history(db, start=START)
    with db.transaction() as s:
        new = activity_service.add_activity(
            session=s, now=NOW, campaign_id=h.campaign_id, name="Later", activity_type="sms"
        ).id
    with db.read() as s:
        stats = activity_stats(session=s, campaign_id=h.campaign_id, now=NOW)
    empty = stats.get(new)
    assert (empty.processed, empty.sent) == (0, 0)
    assert len(empty.daily) == 15 and all(d.processed == 0 for d in empty.daily)


def test_statements_do_not_grow_with_activities(db: Database) -> None:
    h = make_history(db, start=START)
    with db.read() as s:
        with count_sql(db) as few:
            activity_stats(session=s, campaign_id=h.campaign_id, now=NOW)
    with db.transaction() as s:
        for i in range(10):
            activity_service.add_activity(
                session=s, now=NOW, campaign_id=h.campaign_id, name=f"Extra {i}",
                activity_type="email", trigger_type="activity", parent_id=h.welcome,
            )
    with db.read() as s:
        with count_sql(db) as many:
            activity_stats(session=s, campaign_id=h.campaign_id, now=NOW)
    assert len(few) == len(many) == 2


def test_days_must_be_positive(db: Database) -> None:
    with db.read() as s, pytest.raises(ValueError):
        activity_stats(session=s, campaign_id=1, now=NOW, days=0)


def test_other_campaigns_do_not_count(db: Database) -> None:
    h = make_history(db, start=START)
    with db.read() as s:
        stats = activity_stats(session=s, campaign_id=h.campaign_id + 1000, now=NOW)
    assert list(stats) == []
    assert stats.get(h.welcome).processed == 0

