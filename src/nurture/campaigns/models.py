"""Campaigns, their activity trees, and the minimal server action the engine ships (SPEC §3, §4, §8)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nurture.db.base import Base

CAMPAIGN_STATES = ("draft", "running", "stopped")
INTERVAL_UNITS = ("hours", "days", "weeks", "months")

#: trigger -> the activity type its parent must have (None: no parent; "any": any activity)
TRIGGER_PARENT: dict[str, str | None] = {
    "begin": None,
    "activity": "any",
    "mail_open": "email",
    "mail_not_open": "email",
    "mail_click": "email",
    "mail_not_click": "email",
    "mail_reply": "email",
    "mail_not_reply": "email",
    "mail_bounce": "email",
    "sms_click": "sms",
    "sms_not_click": "sms",
    "sms_bounce": "sms",
}
TRIGGER_TYPES = tuple(TRIGGER_PARENT)
#: triggers whose traces wait, undated, for an event on the parent message
EVENT_TRIGGERS = frozenset(
    {"mail_open", "mail_click", "mail_reply", "mail_bounce", "sms_click", "sms_bounce"}
)
#: "did not happen" triggers: dated at parent execution + interval, canceled if the event happens
NOT_TRIGGERS = frozenset({"mail_not_open", "mail_not_click", "mail_not_reply", "sms_not_click"})


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(Text, default="[]")
    unicity_field: Mapped[str] = mapped_column(String(64), default="id")
    include_archived: Mapped[bool] = mapped_column(Boolean, default=False)
    responsible_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    event_window_days: Mapped[int] = mapped_column(Integer, default=30)
    #: edited while started: the marketer must press *Update* to apply the changes
    workflow_modified: Mapped[bool] = mapped_column(Boolean, default=False)
    #: set the first time the campaign starts; activities added after it need *Update*
    started_at: Mapped[datetime | None] = mapped_column()
    #: last enrolment pass; NULL asks the runners for one at once (set by start)
    last_sync_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    activities: Mapped[list[Activity]] = relationship(
        back_populates="campaign",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Activity.id",
    )


class ServerAction(Base):
    """A reusable action on one target model, stored as data (never code)."""

    __tablename__ = "server_action"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(64))
    action_type: Mapped[str] = mapped_column(String(32), default="update_record")
    #: JSON: {"set": {field: value}, "add_tags": [names], "remove_tags": [names]}
    payload: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column()


class Activity(Base):
    __tablename__ = "activity"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    activity_type: Mapped[str] = mapped_column(String(16))
    server_action_id: Mapped[int | None] = mapped_column(
        ForeignKey("server_action.id", ondelete="SET NULL"), index=True
    )
    trigger_type: Mapped[str] = mapped_column(String(20), default="begin")
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("activity.id", ondelete="CASCADE"), index=True
    )
    interval_number: Mapped[int] = mapped_column(Integer, default=0)
    interval_unit: Mapped[str] = mapped_column(String(10), default="hours")
    expiry_number: Mapped[int | None] = mapped_column(Integer)
    expiry_unit: Mapped[str] = mapped_column(String(10), default="hours")
    domain: Mapped[str] = mapped_column(Text, default="[]")
    #: added after the campaign started: *Update* creates its traces for existing participants
    pending_new: Mapped[bool] = mapped_column(Boolean, default=False)
    #: interval changed after the campaign started: *Update* re-dates its scheduled traces
    pending_redate: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    campaign: Mapped[Campaign] = relationship(back_populates="activities")
    server_action: Mapped[ServerAction | None] = relationship()
