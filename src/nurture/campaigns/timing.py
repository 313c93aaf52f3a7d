"""Calendar arithmetic for activity intervals and expiries (no dateutil)."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta


def add_interval(moment: datetime, number: int, unit: str) -> datetime:
    """``moment`` + ``number`` ``unit``; months keep the day, clamped to the month's last day."""
    if unit == "hours":
        return moment + timedelta(hours=number)
    if unit == "days":
        return moment + timedelta(days=number)
    if unit == "weeks":
        return moment + timedelta(weeks=number)
    if unit == "months":
        month_index = moment.month - 1 + number
        year = moment.year + month_index // 12
        month = month_index % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    raise ValueError(f"unknown interval unit {unit!r}")


def subtract_interval(moment: datetime, number: int, unit: str) -> datetime:
    return add_interval(moment, -number, unit)


def hours_equivalent(number: int, unit: str) -> int:
    """For ordering only (a month counts as 720 hours, as in Odoo)."""
    return number * {"hours": 1, "days": 24, "weeks": 168, "months": 720}[unit]
