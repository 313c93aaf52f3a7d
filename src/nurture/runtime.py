"""The running process's settings and database, built once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nurture.config import Settings, load_settings
from nurture.db import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database


def open_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or load_settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return Runtime(settings=settings, db=Database(settings.database_url))
