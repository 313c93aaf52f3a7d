"""Shared helpers for record tests: a listener that records change notifications."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.orm import Session

from nurture.records import events

NOW = datetime(2026, 3, 1, 9, 0, 0)


class Heard:
    def __init__(self) -> None:
        self.changed: list[tuple[str, list[int]]] = []
        self.deleted: list[tuple[str, list[int]]] = []

    def changed_ids(self, model: str) -> list[int]:
        return [i for m, ids in self.changed if m == model for i in ids]

    def deleted_ids(self, model: str) -> list[int]:
        return [i for m, ids in self.deleted if m == model for i in ids]


@contextmanager
def listening() -> Iterator[Heard]:
    """Register real listeners on the record events for the duration of a test."""
    heard = Heard()

    def on_changed(session: Session, model: str, ids: Sequence[int], now: datetime) -> None:
        assert session.in_transaction()
        heard.changed.append((model, list(ids)))

    def on_deleted(session: Session, model: str, ids: Sequence[int], now: datetime) -> None:
        heard.deleted.append((model, list(ids)))

    events.on_changed(on_changed)
    events.on_deleted(on_deleted)
    try:
        yield heard
    finally:
        events._changed.remove(on_changed)
        events._deleted.remove(on_deleted)
