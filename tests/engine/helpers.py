"""Small builders for engine scenario tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.db import Database
from nurture.engine.models import Participant, Trace
from nurture.records.events import records_changed
from nurture.records.models import Contact

T0 = datetime(2026, 1, 5, 9, 0, 0)


def add_contacts(
    session: Session, rows: Iterable[dict[str, Any]], *, now: datetime = T0, notify: bool = False
) -> list[int]:
    ids = []
    for row in rows:
        contact = Contact(
            name=row.get("name", "c"),
            email=row.get("email"),
            country_code=row.get("country_code"),
            city=row.get("city"),
            active=row.get("active", True),
            created_at=now,
            updated_at=now,
        )
        session.add(contact)
        session.flush()
        ids.append(contact.id)
    if notify:
        records_changed(session, model="contact", ids=ids, now=now)
    return ids


def make_campaign(
    session: Session, *, domain: Any = None, now: datetime = T0, **kw: Any
) -> int:
    campaign = cs.create_campaign(
        session=session, now=now, name=kw.pop("name", "Camp"), model="contact", domain=domain, **kw
    )
    return campaign.id


def tag_action(session: Session, tag: str = "Hot", *, now: datetime = T0) -> int:
    return action_service.create_server_action(
        session=session, now=now, name=f"tag {tag}", model="contact", add_tags=[tag]
    ).id


def add(session: Session, campaign_id: int, name: str, *, now: datetime = T0, **kw: Any) -> int:
    kw.setdefault("activity_type", "action")
    return activity_service.add_activity(session=session, now=now, campaign_id=campaign_id, name=name, **kw).id


def traces(db: Database, *, activity_id: int | None = None, **filters: Any) -> list[Trace]:
    with db.read() as s:
        stmt = select(Trace).order_by(Trace.id)
        if activity_id is not None:
            stmt = stmt.where(Trace.activity_id == activity_id)
        for key, value in filters.items():
            stmt = stmt.where(getattr(Trace, key) == value)
        rows = list(s.scalars(stmt))
        s.expunge_all()
        return rows


def states(db: Database, activity_id: int) -> list[str]:
    return [t.state for t in traces(db, activity_id=activity_id)]


def participants(db: Database, campaign_id: int) -> list[Participant]:
    with db.read() as s:
        rows = list(
            s.scalars(
                select(Participant)
                .where(Participant.campaign_id == campaign_id)
                .order_by(Participant.id)
            )
        )
        s.expunge_all()
        return rows


def count(db: Database, model: Any) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)
