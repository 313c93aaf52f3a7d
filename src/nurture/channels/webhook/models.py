"""The webhook outbox: one :class:`WebhookDelivery` row per POST to make.

The ``webhook`` server action writes the row in the engine's batch transaction (body,
signed headers, URL) and the delivery core POSTs it after commit. States: ``queued`` →
``sending`` (claimed with a lease, the request in flight) → ``sent`` / ``failed``;
``queued`` again after a retryable failure (``next_attempt_at``). ``delivery_id`` is the
``X-Nurture-Delivery`` header, the same on every attempt (receivers de-duplicate on it).
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.channels.models import QueuedRow
from nurture.db.base import Base

WEBHOOK_STATES = ("queued", "sending", "sent", "failed")


class WebhookDelivery(QueuedRow, Base):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("trace_id", "action_id"),
        Index(
            "ix_webhook_delivery_due",
            "next_attempt_at",
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "ix_webhook_delivery_sending",
            "lease_until",
            sqlite_where=text("state = 'sending'"),
            postgresql_where=text("state = 'sending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trace_id: Mapped[int] = mapped_column(ForeignKey("trace.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("server_action.id", ondelete="SET NULL"))
    #: the ``X-Nurture-Delivery`` header (stable across attempts)
    delivery_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))
    #: the request headers as a JSON object (signature included; the secret is not stored)
    headers: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    timeout: Mapped[int] = mapped_column(Integer, default=10)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    #: the HTTP status of the last answer (None: no answer)
    response_status: Mapped[int | None] = mapped_column(Integer)
