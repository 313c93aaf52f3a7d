"""Calendar arithmetic of intervals holds for all dates (no database)."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from nurture.campaigns.timing import add_interval

moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31))


@given(moments, st.integers(min_value=0, max_value=240))
def test_months_keep_the_day_clamped_to_the_month_end(moment: datetime, months: int) -> None:
    result = add_interval(moment, months, "months")
    assert (result.year * 12 + result.month) - (moment.year * 12 + moment.month) == months
    last = calendar.monthrange(result.year, result.month)[1]
    assert result.day == min(moment.day, last)
    assert result.time() == moment.time()


@given(moments, st.integers(min_value=0, max_value=10_000), st.sampled_from(["hours", "days", "weeks"]))
def test_fixed_units_are_exact(moment: datetime, number: int, unit: str) -> None:
    hours = {"hours": 1, "days": 24, "weeks": 168}[unit] * number
    assert add_interval(moment, number, unit) - moment == timedelta(hours=hours)


@given(moments, st.integers(min_value=0, max_value=120), st.integers(min_value=0, max_value=120))
def test_intervals_never_go_backwards(moment: datetime, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert moment <= add_interval(moment, low, "months") <= add_interval(moment, high, "months")
