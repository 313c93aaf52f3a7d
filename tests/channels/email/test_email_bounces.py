"""The auto-blacklist rule: 5 bounces over more than a week within 13 weeks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nurture.channels.email.bounces import should_auto_blacklist

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def days_ago(*days: float) -> list[datetime]:
    return [NOW - timedelta(days=d) for d in days]


def test_five_bounces_over_more_than_a_week() -> None:
    assert should_auto_blacklist(days_ago(1, 3, 5, 7, 9), NOW)


def test_four_bounces_are_not_enough() -> None:
    assert not should_auto_blacklist(days_ago(1, 10, 20, 30), NOW)


def test_bounces_within_one_week_are_not_enough() -> None:
    assert not should_auto_blacklist(days_ago(0.1, 0.2, 1, 2, 6.9), NOW)
    assert not should_auto_blacklist(days_ago(0, 1, 2, 3, 7), NOW)  # exactly a week: not more


def test_old_bounces_are_ignored() -> None:
    assert not should_auto_blacklist(days_ago(1, 2, 100, 200, 300), NOW)
    assert should_auto_blacklist(days_ago(1, 2, 30, 60, 90), NOW)
    assert not should_auto_blacklist(days_ago(1, 2, 30, 60, 92), NOW)  # 92 days > 13 weeks


def test_future_times_are_ignored() -> None:
    assert not should_auto_blacklist(days_ago(-30, 1, 2, 3, 10), NOW)
