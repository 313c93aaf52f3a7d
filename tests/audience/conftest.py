"""Fixtures for the filter-language tests: a small, fully known set of contacts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy.orm import Session

from nurture.db import Database
from nurture.records.models import (
    BlacklistHistory,
    Contact,
    EmailBlacklist,
    Event,
    EventRegistration,
    Lead,
    MailingContact,
    MailingList,
    MailingSubscription,
    PhoneBlacklist,
    Tag,
    User,
    contact_tag,
    lead_tag,
)

NOW = datetime(2026, 3, 15, 12, 0, 0)


@dataclass
class People:
    db: Database
    ids: dict[str, int]  # contact name -> id

    def names(self, ids: set[int]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i] for i in ids}


def make_contact(session: Session, name: str, **values: object) -> Contact:
    values.setdefault("created_at", NOW)
    values.setdefault("updated_at", NOW)
    contact = Contact(name=name, **values)
    session.add(contact)
    return contact


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    """The shared database, with the tables these tests write emptied after each test.

    (Only these tables: the suite-wide fixture wipes every mapped table, which breaks
    while other packages' tables are mapped but not yet migrated.)
    """
    try:
        yield database
    finally:
        clear(database)


def clear(database: Database) -> None:
    with database.engine.begin() as conn:
        for table in (
            EmailBlacklist.__table__,
            PhoneBlacklist.__table__,
            BlacklistHistory.__table__,
            EventRegistration.__table__,
            Event.__table__,
            MailingSubscription.__table__,
            MailingContact.__table__,
            MailingList.__table__,
            lead_tag,
            Lead.__table__,
            contact_tag,
            Contact.__table__,
            Tag.__table__,
            User.__table__,
        ):
            conn.execute(table.delete())


@pytest.fixture
def people(db: Database) -> Iterator[People]:
    """Six contacts covering unset values, case, tags (to-many) and salespeople (many2one).

    ===== ===================== ====== ======= ========== ============ ======
    name  email                 ctry   tags    salesperson created      active
    ===== ===================== ====== ======= ========== ============ ======
    Ann   ann@Gmail.com         FR     VIP,New Bob        2026-03-14   yes
    Ben   ben@example.org       BE     New     Carol      2026-01-01   yes
    Cid   (none)                FR     -       -          2025-12-01   yes
    Dee   ""                    (none) VIP     Bob        2026-03-10   yes
    Eve   eve_50%@mail.fr       DE     -       Carol      2026-03-15   no
    Fay   FAY@GMAIL.COM         FR     vip     -          2026-02-15   yes
    ===== ===================== ====== ======= ========== ============ ======
    """
    with db.transaction() as s:
        bob = User(login="bob", name="Bob", email="bob@nurture.test", created_at=NOW)
        carol = User(login="carol", name="Carol", email=None, created_at=NOW)
        vip, new, lower_vip = Tag(name="VIP"), Tag(name="New"), Tag(name="vip")
        s.add_all([bob, carol, vip, new, lower_vip])
        rows = [
            make_contact(s, "Ann", email="ann@Gmail.com", country_code="FR", tags=[vip, new],
                         salesperson=bob, created_at=datetime(2026, 3, 14), city="Paris"),
            make_contact(s, "Ben", email="ben@example.org", country_code="BE", tags=[new],
                         salesperson=carol, created_at=datetime(2026, 1, 1), city="Liège"),
            make_contact(s, "Cid", email=None, country_code="FR",
                         created_at=datetime(2025, 12, 1)),
            make_contact(s, "Dee", email="", country_code=None, tags=[vip], salesperson=bob,
                         created_at=datetime(2026, 3, 10), city="paris"),
            make_contact(s, "Eve", email="eve_50%@mail.fr", country_code="DE", salesperson=carol,
                         created_at=datetime(2026, 3, 15), active=False),
            make_contact(s, "Fay", email="FAY@GMAIL.COM", country_code="FR", tags=[lower_vip],
                         created_at=datetime(2026, 2, 15)),
        ]  # fmt: skip
        s.flush()
        ids = {c.name: c.id for c in rows}
    yield People(db=db, ids=ids)
