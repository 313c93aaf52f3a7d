"""Database layer: declarative base, engine factory, sessions, migrations."""

from nurture.db.base import Base
from nurture.db.database import Database

__all__ = ["Base", "Database"]
