from sqlalchemy import select

from nurture.db import Database
from nurture.records.models import Tag


def test_migrated_database_accepts_and_returns_rows(db: Database) -> None:
    with db.transaction() as s:
        s.add(Tag(name="VIP"))
    with db.read() as s:
        assert s.scalars(select(Tag.name)).all() == ["VIP"]
