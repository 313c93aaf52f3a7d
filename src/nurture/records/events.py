"""Record change notifications: how continuous enrolment hears about new and changed records.

Record services call :func:`records_changed` / :func:`records_deleted` inside the same
transaction that wrote the rows, with only the affected ids. Listeners (the campaign engine)
subscribe once at import time; they run in that transaction, so an enrolment either
commits with the record or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

Listener = Callable[[Session, str, Sequence[int], datetime], None]

_changed: list[Listener] = []
_deleted: list[Listener] = []


def on_changed(listener: Listener) -> Listener:
    """Register ``listener(session, model, ids, now)`` for created or updated records."""
    if listener not in _changed:
        _changed.append(listener)
    return listener


def on_deleted(listener: Listener) -> Listener:
    """Register ``listener(session, model, ids, now)`` for records about to be deleted."""
    if listener not in _deleted:
        _deleted.append(listener)
    return listener


def records_changed(session: Session, *, model: str, ids: Sequence[int], now: datetime) -> None:
    if ids:
        for listener in list(_changed):
            listener(session, model, ids, now)


def records_deleted(session: Session, *, model: str, ids: Sequence[int], now: datetime) -> None:
    if ids:
        for listener in list(_deleted):
            listener(session, model, ids, now)
