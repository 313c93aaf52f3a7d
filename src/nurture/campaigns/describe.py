"""Activities in words and in tree order, for screens that show a workflow."""

from __future__ import annotations

from collections.abc import Sequence

from nurture.campaigns.models import Activity

_EVENT_WORDS = {
    "mail_open": ("Opened", None),
    "mail_not_open": (None, "Not opened"),
    "mail_click": ("Clicked", None),
    "mail_not_click": (None, "Not clicked"),
    "mail_reply": ("Replied", None),
    "mail_not_reply": (None, "Not replied"),
    "mail_bounce": ("Bounced", None),
    "sms_click": ("SMS clicked", None),
    "sms_not_click": (None, "SMS not clicked"),
    "sms_bounce": ("SMS bounced", None),
}


def _amount(number: int, unit: str) -> str:
    singular = unit[:-1] if unit.endswith("s") else unit
    return f"{number} {singular if number == 1 else unit}"


def trigger_words(activity: Activity) -> str:
    """"At start after 1 hour", "Clicked after 2 hours", "Not opened within 7 days"…"""
    n, unit = activity.interval_number, activity.interval_unit
    trigger = activity.trigger_type
    if trigger == "begin":
        return "At start" if n == 0 else f"At start after {_amount(n, unit)}"
    if trigger == "activity":
        return "After the parent" if n == 0 else f"{_amount(n, unit)} after the parent"
    happened, not_happened = _EVENT_WORDS.get(trigger, (trigger, None))
    if not_happened is not None:
        return f"{not_happened} within {_amount(n, unit)}"
    return str(happened) if n == 0 else f"{happened} after {_amount(n, unit)}"


def with_depth(activities: Sequence[Activity]) -> list[tuple[Activity, int]]:
    """Parents before children, each with its depth in the tree (roots are 0)."""
    by_parent: dict[int | None, list[Activity]] = {}
    ids = {a.id for a in activities}
    for activity in sorted(activities, key=lambda a: a.id):
        parent = activity.parent_id if activity.parent_id in ids else None
        by_parent.setdefault(parent, []).append(activity)
    ordered: list[tuple[Activity, int]] = []
    stack = [(a, 0) for a in reversed(by_parent.get(None, []))]
    while stack:
        activity, depth = stack.pop()
        ordered.append((activity, depth))
        stack.extend((c, depth + 1) for c in reversed(by_parent.get(activity.id, [])))
    return ordered
