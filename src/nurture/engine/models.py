"""Participants and traces (SPEC §5): the rows the engine schedules, claims and executes.

A trace with a schedule date *is* the timer; ``schedule_date`` NULL means "waiting for an
event on the parent message". ``claimed_by``/``lease_until`` mark a trace taken by a worker;
a crashed worker's lease runs out and the row returns to the queue.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.db.base import Base

PARTICIPANT_STATES = ("running", "completed", "removed")
TRACE_STATES = ("scheduled", "processed", "rejected", "canceled", "error")


class Participant(Base):
    __tablename__ = "participant"
    __table_args__ = (
        # One real participant per record and campaign (a record that left and returns is
        # not enrolled twice); test participants may repeat.
        Index(
            "uq_participant_campaign_res",
            "campaign_id",
            "res_id",
            unique=True,
            sqlite_where=text("is_test = 0"),
            postgresql_where=text("is_test = false"),
        ),
        # At most one real participant per distinct non-empty unicity value.
        Index(
            "uq_participant_campaign_unicity",
            "campaign_id",
            "unicity_value",
            unique=True,
            sqlite_where=text("is_test = 0 AND unicity_value IS NOT NULL"),
            postgresql_where=text("is_test = false AND unicity_value IS NOT NULL"),
        ),
        Index("ix_participant_campaign_state", "campaign_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(64))
    res_id: Mapped[int] = mapped_column(Integer, index=True)
    #: the record's unicity field value at enrolment (NULL: empty or unicity by id)
    unicity_value: Mapped[str | None] = mapped_column(String(254))
    state: Mapped[str] = mapped_column(String(16), default="running")
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class Trace(Base):
    __tablename__ = "trace"
    __table_args__ = (
        Index(
            "ix_trace_due",
            "schedule_date",
            sqlite_where=text("state = 'scheduled'"),
            postgresql_where=text("state = 'scheduled'"),
        ),
        Index(
            "ix_trace_waiting",
            "activity_id",
            sqlite_where=text("state = 'scheduled' AND schedule_date IS NULL"),
            postgresql_where=text("state = 'scheduled' AND schedule_date IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participant.id", ondelete="CASCADE"), index=True
    )
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activity.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("trace.id", ondelete="CASCADE"), index=True
    )
    res_id: Mapped[int] = mapped_column(Integer)
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="scheduled")
    schedule_date: Mapped[datetime | None] = mapped_column()
    executed_at: Mapped[datetime | None] = mapped_column()
    state_message: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column()
    # message statistics (email/SMS steps); the engine reads them for *_not_* checks
    sent_at: Mapped[datetime | None] = mapped_column()
    opened_at: Mapped[datetime | None] = mapped_column()
    clicked_at: Mapped[datetime | None] = mapped_column()
    replied_at: Mapped[datetime | None] = mapped_column()
    bounced_at: Mapped[datetime | None] = mapped_column()
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
