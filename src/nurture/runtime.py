"""The running process's settings and database, built once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nurture.config import Settings, load_settings
from nurture.db import Database
from nurture.records.validation import allow_special_use_domains


@dataclass
class Runtime:
    settings: Settings
    db: Database

    def __post_init__(self) -> None:
        # process-wide rules that services read without settings at hand
        allow_special_use_domains(self.settings.allow_special_use_domains)


def open_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or load_settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return Runtime(settings=settings, db=Database(settings.database_url))
