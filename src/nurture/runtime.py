"""The running process's settings and database, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from nurture.config import ConfigError, Settings, load_settings
from nurture.db import Database
from nurture.logs import setup_logging
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
    fmt = settings.extra.get("NURTURE_LOG_FORMAT", "text").strip().lower()
    if fmt not in {"text", "json"}:
        raise ConfigError(f"NURTURE_LOG_FORMAT: expected text or json, got {fmt!r}")
    setup_logging(settings.log_level, fmt)
    rt = Runtime(settings=settings, db=Database(settings.database_url))
    if settings.extra.get("NURTURE_BROKER_URL"):  # scale-out: changes send follow-up tasks
        from nurture.jobs import attach

        attach(rt)
    return rt
