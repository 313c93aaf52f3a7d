"""The running process's settings and database, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from nurture.config import ConfigError, Settings, load_settings
from nurture.db import Database
from nurture.logs import setup_logging
from nurture.records.validation import allow_special_use_domains

#: entry-point group of functions called with every runtime opened (``open_runtime``): how
#: the scale-out package attaches a process to the broker when one is configured
#: (:func:`nurture.jobs.attach_if_configured`) without this module importing it
RUNTIME_HOOKS = "nurture.runtime"


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
    for point in entry_points(group=RUNTIME_HOOKS):
        point.load()(rt)
    return rt
