"""Settings of the Celery engine, read from the ``NURTURE_*`` variables of :class:`Settings`.

Kept apart from :mod:`nurture.config` so the embedded server needs none of it: every value
has a default and is checked here, with a :class:`~nurture.config.ConfigError` naming the
variable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from nurture.config import ConfigError, Settings

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class JobSettings:
    #: ``NURTURE_BROKER_URL``: None when not set (no Celery: the embedded runner)
    broker_url: str | None
    #: ``NURTURE_REDIS_URL``: pending-task keys and rate-limit buckets (default: the broker
    #: when it is Redis; without Redis both fall back to this process / PostgreSQL)
    redis_url: str | None
    #: ``NURTURE_SCHEDULER_INTERVAL``: seconds between two scheduler passes
    scheduler_interval: float = 1.0
    #: ``NURTURE_FULL_SYNC_INTERVAL``: seconds between full enrolment passes
    full_sync_interval: float = 300.0
    #: ``NURTURE_TASK_BATCH``: most traces one "run due traces" task executes
    task_batch: int = 1000
    #: ``NURTURE_DELIVERY_BATCH``: most messages one delivery task claims
    delivery_batch: int = 50
    #: ``NURTURE_TASK_TIME_LIMIT``: hard time limit of a task (soft limit: 80 %)
    task_time_limit: float = 300.0
    #: ``NURTURE_PENDING_TTL``: seconds a "task pending" key lives (a lost task is re-sent
    #: by the scheduler after this)
    pending_ttl: float = 30.0
    #: ``NURTURE_QUEUE_PREFIX``: names the queues (``<prefix>``, ``<prefix>.delivery``) and
    #: Redis keys, so several installations (or test runs) can share one broker
    queue_prefix: str = "nurture"

    @property
    def engine_queue(self) -> str:
        return self.queue_prefix

    @property
    def delivery_queue(self) -> str:
        return f"{self.queue_prefix}.delivery"

    @property
    def broker(self) -> str:
        return self.broker_url or DEFAULT_BROKER


def _number(extra: dict[str, str], name: str, default: float, cast: Callable[[str], float]) -> float:
    raw = extra.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be greater than 0, got {raw!r}")
    return value


def _broker(name: str, value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in {"redis", "rediss", "amqp", "amqps", "pyamqp"}:
        raise ConfigError(
            f"{name}: unsupported broker URL {value!r}; use redis://host:6379/0 or "
            "amqp://user:password@host:5672//"
        )
    return value


def job_settings(settings: Settings) -> JobSettings:
    extra = dict(settings.extra)
    broker = extra.get("NURTURE_BROKER_URL") or None
    if broker is not None:
        broker = _broker("NURTURE_BROKER_URL", broker)
    redis_url = extra.get("NURTURE_REDIS_URL") or None
    if redis_url is not None and urlsplit(redis_url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"NURTURE_REDIS_URL: expected redis://host:6379/0, got {redis_url!r}")
    if redis_url is None and broker is not None and broker.startswith(("redis", "rediss")):
        redis_url = broker
    return JobSettings(
        broker_url=broker,
        redis_url=redis_url,
        scheduler_interval=_number(extra, "NURTURE_SCHEDULER_INTERVAL", 1.0, float),
        full_sync_interval=_number(extra, "NURTURE_FULL_SYNC_INTERVAL", 300.0, float),
        task_batch=int(_number(extra, "NURTURE_TASK_BATCH", 1000, int)),
        delivery_batch=int(_number(extra, "NURTURE_DELIVERY_BATCH", 50, int)),
        task_time_limit=_number(extra, "NURTURE_TASK_TIME_LIMIT", 300.0, float),
        pending_ttl=_number(extra, "NURTURE_PENDING_TTL", 30.0, float),
        queue_prefix=_prefix(extra.get("NURTURE_QUEUE_PREFIX") or "nurture"),
    )


def _prefix(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise ConfigError(
            f"NURTURE_QUEUE_PREFIX: letters, digits and . _ : - only (64 at most), got {value!r}"
        )
    return value
