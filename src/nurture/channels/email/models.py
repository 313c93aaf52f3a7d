"""Email channel tables: templates, the per-trace message (the outbox), tracked links, hits.

* :class:`EmailTemplate` — subject, preview, from, reply-to and HTML body of one email
  activity (``activity_id`` unique) or standalone (``activity_id`` NULL, reusable); the
  subject is unique within a campaign. The campaign engine's :class:`Activity` has no
  template columns, so the template links to the activity rather than duplicating it.
  ``mailing_list_id`` optionally names the *target list* of the mailing (opt-out check and
  unsubscribe target, see :mod:`.service`).
* :class:`MailMessage` — one row per trace (``UNIQUE(trace_id)``: the idempotency key of a
  send). States: ``queued`` → ``sending`` (claimed with a lease, being handed to the
  transport) → ``sent`` / ``failed``; ``queued`` again after a temporary failure
  (``next_attempt_at``); ``canceled``. ``raw`` is the wire source: with the default
  ``outbox`` transport the row *is* the outbox (kept, viewable, downloadable).
* :class:`TrackedLink` — a stored URL (UTM included) of a campaign, ``UNIQUE(campaign,
  url)``; click tokens name the link id, so redirects only ever go to stored URLs.
* :class:`LinkClick` / :class:`MailOpen` — every tracking hit, with user agent, IP class
  (never the full address) and the machine-hit flag.
* :class:`MailUnsubscribe` — who unsubscribed from which message, with the optional reason.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from nurture.channels.models import ActivityTemplateColumns, QueuedMessageColumns, queue_indexes
from nurture.db.base import Base

MESSAGE_STATES = ("queued", "sending", "sent", "failed", "canceled")


class EmailTemplate(ActivityTemplateColumns, Base):
    __tablename__ = "email_template"
    __table_args__ = (
        # subject unique within a campaign (standalone templates have no campaign)
        UniqueConstraint("campaign_id", "subject"),
    )

    subject: Mapped[str] = mapped_column(String(500))
    preview: Mapped[str] = mapped_column(String(500), default="")
    from_addr: Mapped[str | None] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    body_html: Mapped[str] = mapped_column(Text, default="")
    mailing_list_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailing_list.id", ondelete="SET NULL"), index=True
    )


class MailMessage(QueuedMessageColumns, Base):
    __tablename__ = "mail_message"
    __table_args__ = (
        *queue_indexes("mail_message"),
        Index("ix_mail_message_activity_email", "activity_id", "email"),
        Index("ix_mail_message_email", "email"),
    )

    #: the recipient, normalised (duplicate, blacklist and bounce checks compare this)
    email: Mapped[str] = mapped_column(String(254))
    #: the envelope recipient as written (a local part may be case-sensitive)
    recipient: Mapped[str] = mapped_column(String(320))
    envelope_from: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(200))  # "<token@domain>"
    subject: Mapped[str] = mapped_column(String(500), default="")
    failure_type: Mapped[str | None] = mapped_column(String(40))
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    transport: Mapped[str | None] = mapped_column(String(16))


class TrackedLink(Base):
    __tablename__ = "tracked_link"
    __table_args__ = (UniqueConstraint("campaign_id", "url"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column()


class LinkClick(Base):
    __tablename__ = "link_click"

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("tracked_link.id", ondelete="CASCADE"), index=True)
    trace_id: Mapped[int] = mapped_column(ForeignKey("trace.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column()
    user_agent: Mapped[str | None] = mapped_column(String(500))
    ip_class: Mapped[str | None] = mapped_column(String(64))
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(200))
    fired: Mapped[bool] = mapped_column(Boolean, default=False)


class MailOpen(Base):
    __tablename__ = "mail_open"

    id: Mapped[int] = mapped_column(primary_key=True)
    trace_id: Mapped[int] = mapped_column(ForeignKey("trace.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column()
    user_agent: Mapped[str | None] = mapped_column(String(500))
    ip_class: Mapped[str | None] = mapped_column(String(64))
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(200))
    proxy: Mapped[str | None] = mapped_column(String(32))
    fired: Mapped[bool] = mapped_column(Boolean, default=False)


class MailUnsubscribe(Base):
    __tablename__ = "mail_unsubscribe"

    id: Mapped[int] = mapped_column(primary_key=True)
    trace_id: Mapped[int | None] = mapped_column(
        ForeignKey("trace.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), index=True)
    mailing_list_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailing_list.id", ondelete="SET NULL")
    )
    reason: Mapped[str | None] = mapped_column(String(200))
    blacklisted: Mapped[bool] = mapped_column(Boolean, default=False)
    one_click: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column()
