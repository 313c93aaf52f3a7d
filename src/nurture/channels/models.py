"""Columns shared by the channels' tables: templates and outboxes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column


class ActivityTemplateColumns:
    """The columns of every channel's template table
    (:mod:`nurture.channels.activity_templates`): the template of one activity
    (``activity_id`` unique; the campaign engine's activity has no template columns) or
    standalone (``activity_id`` NULL, a target ``model``)."""

    # (``sort_order``: these first and the times last, the order of the migrations' tables)
    id: Mapped[int] = mapped_column(primary_key=True, sort_order=-1)
    name: Mapped[str] = mapped_column(String(200), sort_order=-1)
    model: Mapped[str] = mapped_column(String(64), sort_order=-1)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True, sort_order=-1
    )
    activity_id: Mapped[int | None] = mapped_column(
        ForeignKey("activity.id", ondelete="CASCADE"), unique=True, sort_order=-1
    )
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


def queue_indexes(table: str) -> tuple[Index, Index]:
    """The partial indexes of an outbox table the delivery core reads: the due ``queued``
    rows, and the ``sending`` rows by lease."""
    return (
        Index(
            f"ix_{table}_due",
            "next_attempt_at",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            f"ix_{table}_sending",
            "lease_until",
            sqlite_where=text("state = 'sending'"),
            postgresql_where=text("state = 'sending'"),
        ),
    )


class QueuedRow:
    """The columns the delivery core (:mod:`nurture.channels.queue`) reads and writes on
    every outbox table: state, attempts, due time, claim token and lease, failure reason,
    timestamps. An outbox table's class adds its own columns and its indexes."""

    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column()
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class QueuedMessageColumns(QueuedRow):
    """The columns of a campaign message channel's outbox (email, SMS): one row per trace
    (``UNIQUE(trace_id)``: the idempotency key of a send) of a campaign's activity, with the
    delivery core's :class:`QueuedRow`; with :func:`queue_indexes`."""

    id: Mapped[int] = mapped_column(primary_key=True, sort_order=-1)
    trace_id: Mapped[int] = mapped_column(
        ForeignKey("trace.id", ondelete="CASCADE"), unique=True, sort_order=-1
    )
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True, sort_order=-1
    )
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), sort_order=-1)
    is_test: Mapped[bool] = mapped_column(Boolean, default=False, sort_order=-1)
