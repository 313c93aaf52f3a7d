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

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.channels.models import ActivityTemplateColumns, QueuedMessageColumns, queue_indexes
from nurture.db.base import Base

SMS_STATES = ("queued", "sending", "sent", "failed", "canceled")


class SmsTemplate(ActivityTemplateColumns, Base):
    __tablename__ = "sms_template"

    body: Mapped[str] = mapped_column(Text)
    #: append the opt-out text (``NURTURE_SMS_OPT_OUT_TEXT``) to every message
    opt_out: Mapped[bool] = mapped_column(Boolean, default=False)


class SmsMessage(QueuedMessageColumns, Base):
    __tablename__ = "sms_message"
    __table_args__ = queue_indexes("sms_message")

    #: ``True`` for a transactional SMS (server action): not a marketing message
    transactional: Mapped[bool] = mapped_column(Boolean, default=False)
    to_number: Mapped[str] = mapped_column(String(32), index=True)  # E.164
    body: Mapped[str] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer, default=1)
    encoding: Mapped[str] = mapped_column(String(8), default="gsm7")
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column()
