"""The shared outbox: one :class:`ChannelMessage` row per message of a plugin channel.

Channels that need no table of their own (a plugin: push notifications, a chat app, any
HTTP provider) queue their messages here, so adding one needs no migration. ``channel`` is
the delivery channel's name (:mod:`nurture.channels.registry`); ``trace_id`` is unique (the
idempotency key of a send, as for email and SMS); ``payload`` is the channel's JSON (what
its ``send`` needs). States: ``queued`` → ``sending`` (claimed with a lease) → ``sent`` /
``failed``; ``queued`` again after a retryable failure (``next_attempt_at``).
"""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.channels.models import QueuedRow
from nurture.db.base import Base

MESSAGE_STATES = ("queued", "sending", "sent", "failed")


class ChannelMessage(QueuedRow, Base):
    __tablename__ = "channel_message"
    __table_args__ = (
        Index(
            "ix_channel_message_due",
            "channel",
            "next_attempt_at",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "ix_channel_message_sending",
            "lease_until",
            sqlite_where=text("state = 'sending'"),
            postgresql_where=text("state = 'sending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    trace_id: Mapped[int] = mapped_column(ForeignKey("trace.id", ondelete="CASCADE"), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"))
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the address in the channel's terms (a device token, a phone number, a user id)
    recipient: Mapped[str] = mapped_column(String(320))
    #: the channel's JSON document (what its ``send`` needs)
    payload: Mapped[str] = mapped_column(Text)
    #: the provider's message id, when it gives one
    provider_id: Mapped[str | None] = mapped_column(String(128))
