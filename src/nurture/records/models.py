"""Tables of the business records campaigns target (SPEC §1) and their supporting records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nurture.db.base import Base


def _tag_table(name: str, owner: str) -> Table:
    return Table(
        name,
        Base.metadata,
        Column(f"{owner}_id", ForeignKey(f"{owner}.id", ondelete="CASCADE"), primary_key=True),
        Column("tag_id", ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True, index=True),
    )


contact_tag = _tag_table("contact_tag", "contact")
lead_tag = _tag_table("lead_tag", "lead")
mailing_contact_tag = _tag_table("mailing_contact_tag", "mailing_contact")


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column()


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(20), default="marketer")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column()


class Tag(Base):
    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    color: Mapped[int] = mapped_column(Integer, default=0)


class Contact(Timestamps, Base):
    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    phone_valid: Mapped[bool | None] = mapped_column(Boolean)
    mobile: Mapped[str | None] = mapped_column(String(64))
    mobile_valid: Mapped[bool | None] = mapped_column(Boolean)
    company_name: Mapped[str | None] = mapped_column(String(200))
    country_code: Mapped[str | None] = mapped_column(String(2), index=True)
    city: Mapped[str | None] = mapped_column(String(120))
    lang: Mapped[str | None] = mapped_column(String(16))
    tz: Mapped[str | None] = mapped_column(String(64))
    salesperson_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    salesperson: Mapped[User | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=contact_tag)


class Lead(Timestamps, Base):
    __tablename__ = "lead"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    phone_valid: Mapped[bool | None] = mapped_column(Boolean)
    country_code: Mapped[str | None] = mapped_column(String(2))
    type: Mapped[str] = mapped_column(String(20), default="lead")
    stage: Mapped[str] = mapped_column(String(40), default="New")
    expected_revenue: Mapped[float] = mapped_column(Float, default=0.0)
    probability: Mapped[float] = mapped_column(Float, default=0.0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    salesperson_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    contact: Mapped[Contact | None] = relationship()
    salesperson: Mapped[User | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=lead_tag)


class MailingList(Base):
    __tablename__ = "mailing_list"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column()


class MailingContact(Timestamps, Base):
    __tablename__ = "mailing_contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    phone_valid: Mapped[bool | None] = mapped_column(Boolean)
    company_name: Mapped[str | None] = mapped_column(String(200))
    country_code: Mapped[str | None] = mapped_column(String(2))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    subscriptions: Mapped[list[MailingSubscription]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", passive_deletes=True
    )
    tags: Mapped[list[Tag]] = relationship(secondary=mailing_contact_tag)


class MailingSubscription(Base):
    __tablename__ = "mailing_subscription"
    __table_args__ = (UniqueConstraint("contact_id", "list_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("mailing_contact.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(
        ForeignKey("mailing_list.id", ondelete="CASCADE"), index=True
    )
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    subscribed_at: Mapped[datetime] = mapped_column()
    unsubscribed_at: Mapped[datetime | None] = mapped_column()

    contact: Mapped[MailingContact] = relationship(back_populates="subscriptions")
    list: Mapped[MailingList] = relationship()


class Event(Base):
    __tablename__ = "event"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    date_begin: Mapped[datetime] = mapped_column()
    date_end: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class EventRegistration(Timestamps, Base):
    __tablename__ = "event_registration"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    phone_valid: Mapped[bool | None] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(10), default="open")
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    event: Mapped[Event] = relationship()
    contact: Mapped[Contact | None] = relationship()


class CrmActivity(Base):
    """A to-do, call or meeting assigned to a user about one record."""

    __tablename__ = "crm_activity"
    __table_args__ = (Index("ix_crm_activity_res", "res_model", "res_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_type: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True
    )
    res_model: Mapped[str] = mapped_column(String(40))
    res_id: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[datetime] = mapped_column()
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column()

    user: Mapped[User | None] = relationship()


class EmailBlacklist(Base):
    __tablename__ = "email_blacklist"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    reason: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class PhoneBlacklist(Base):
    __tablename__ = "phone_blacklist"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    reason: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class BlacklistHistory(Base):
    """Every block and unblock of an address or number, with why and where it came from."""

    __tablename__ = "blacklist_history"
    __table_args__ = (Index("ix_blacklist_history_value", "kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "email" or "phone"
    value: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(8))  # "add" or "remove"
    reason: Mapped[str | None] = mapped_column(String(200))
    #: manual (UI/API), import, bounce, unsubscribe, action, demo
    source: Mapped[str] = mapped_column(String(20), default="manual")
    created_at: Mapped[datetime] = mapped_column(index=True)
