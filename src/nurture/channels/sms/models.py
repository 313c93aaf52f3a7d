"""SMS channel tables: the per-activity template and the per-trace message (the outbox).

* :class:`SmsTemplate` — the body of one SMS activity (``activity_id`` unique; the campaign
  engine's :class:`~nurture.campaigns.models.Activity` has no template columns, as for
  email) or standalone (``activity_id`` NULL), and whether the opt-out text is appended.
* :class:`SmsMessage` — one row per trace (``UNIQUE(trace_id)``: the idempotency key of a
  send). States: ``queued`` → ``sending`` (claimed with a lease, being handed to the
  provider) → ``sent`` / ``failed``; ``queued`` again after a temporary failure
  (``next_attempt_at``); ``canceled``. With the default ``outbox`` provider the row *is*
  the outbox (viewable). ``provider_id`` is the provider's message id (Twilio's ``SM…``
  sid), indexed: delivery-status callbacks find the message by it.

Tracked links reuse the email channel's :class:`~nurture.channels.email.models.TrackedLink`
(one stored URL per campaign) and :class:`~nurture.channels.email.models.LinkClick` (every
hit, keyed by trace), so link reports cover both channels.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.db.base import Base

SMS_STATES = ("queued", "sending", "sent", "failed", "canceled")


class SmsTemplate(Base):
    __tablename__ = "sms_template"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), index=True
    )
    activity_id: Mapped[int | None] = mapped_column(
        ForeignKey("activity.id", ondelete="CASCADE"), unique=True
    )
    body: Mapped[str] = mapped_column(Text)
    #: append the opt-out text (``NURTURE_SMS_OPT_OUT_TEXT``) to every message
    opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class SmsMessage(Base):
    __tablename__ = "sms_message"
    __table_args__ = (
        Index(
            "ix_sms_message_due",
            "next_attempt_at",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "ix_sms_message_sending",
            "lease_until",
            sqlite_where=text("state = 'sending'"),
            postgresql_where=text("state = 'sending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trace_id: Mapped[int] = mapped_column(ForeignKey("trace.id", ondelete="CASCADE"), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"))
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    #: ``True`` for a transactional SMS (server action): not a marketing message
    transactional: Mapped[bool] = mapped_column(Boolean, default=False)
    to_number: Mapped[str] = mapped_column(String(32), index=True)  # E.164
    body: Mapped[str] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer, default=1)
    encoding: Mapped[str] = mapped_column(String(8), default="gsm7")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column()
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
