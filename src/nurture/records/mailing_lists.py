"""Mailing lists and subscriptions: subscribe, opt out, resubscribe (an opted-out contact
stays opted out until it resubscribes itself)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.errors import NotFound
from nurture.records import models as m
from nurture.records.catalog import REGISTRY
from nurture.records.service import create_record, notify_changed


def get_or_create_mailing_list(*, session: Session, name: str, now: datetime) -> int:
    found = session.scalar(select(m.MailingList.id).where(m.MailingList.name == name.strip()))
    if found is not None:
        return int(found)
    return create_record(session=session, model="mailing_list", values={"name": name}, now=now)


def _subscription(session: Session, contact_id: int, list_id: int) -> m.MailingSubscription | None:
    return session.scalar(
        select(m.MailingSubscription).where(
            m.MailingSubscription.contact_id == contact_id,
            m.MailingSubscription.list_id == list_id,
        )
    )


def _check_list_and_contact(session: Session, contact_id: int, list_id: int) -> None:
    if session.get(m.MailingContact, contact_id) is None:
        raise NotFound(f"no mailing contact with id {contact_id}", field="contact")
    if session.get(m.MailingList, list_id) is None:
        raise NotFound(f"no mailing list with id {list_id}", field="list")


def subscribe(*, session: Session, contact_id: int, list_id: int, now: datetime) -> int:
    """Subscribe a mailing contact to a list; an existing subscription is kept as it is
    (an opted-out contact stays opted out: use :func:`resubscribe`). Returns its id."""
    _check_list_and_contact(session, contact_id, list_id)
    sub = _subscription(session, contact_id, list_id)
    if sub is None:
        sub = m.MailingSubscription(
            contact_id=contact_id, list_id=list_id, opted_out=False, subscribed_at=now
        )
        session.add(sub)
        session.flush()
        notify_changed(session, REGISTRY.get("mailing_contact"), [contact_id], now)
    return int(sub.id)


def opt_out(*, session: Session, contact_id: int, list_id: int, now: datetime) -> int:
    """Record that the contact opted out of the list (creating the subscription if needed)."""
    _check_list_and_contact(session, contact_id, list_id)
    sub = _subscription(session, contact_id, list_id)
    if sub is None:
        sub = m.MailingSubscription(
            contact_id=contact_id, list_id=list_id, subscribed_at=now, opted_out=False
        )
        session.add(sub)
    if not sub.opted_out:
        sub.opted_out = True
        sub.unsubscribed_at = now
        session.flush()
        notify_changed(session, REGISTRY.get("mailing_contact"), [contact_id], now)
    return int(sub.id)


def resubscribe(*, session: Session, contact_id: int, list_id: int, now: datetime) -> int:
    """Subscribe again after an opt-out (or subscribe for the first time)."""
    _check_list_and_contact(session, contact_id, list_id)
    sub = _subscription(session, contact_id, list_id)
    if sub is None:
        return subscribe(session=session, contact_id=contact_id, list_id=list_id, now=now)
    if sub.opted_out:
        sub.opted_out = False
        sub.unsubscribed_at = None
        sub.subscribed_at = now
        session.flush()
        notify_changed(session, REGISTRY.get("mailing_contact"), [contact_id], now)
    return int(sub.id)


def is_opted_out(*, session: Session, contact_id: int, list_id: int) -> bool:
    sub = _subscription(session, contact_id, list_id)
    return bool(sub is not None and sub.opted_out)
