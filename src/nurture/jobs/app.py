"""The Celery application (``nurture worker --engine celery``, ``nurture scheduler``).

Configured from the environment like every Nurture process (:mod:`nurture.jobs.settings`):
broker ``NURTURE_BROKER_URL`` (Redis by default, RabbitMQ supported). Tasks are
acknowledged late (a worker that dies mid-task leaves the message to be delivered again),
a worker takes one message at a time (prefetch 1), tasks have a hard and a soft time limit
and retry transient database errors with exponential backoff. Every task is idempotent:
the database (trace states, ``SKIP LOCKED`` claims, message claim tokens) decides what
runs, never the message, so a duplicate or redelivered message changes nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from celery import Celery

from nurture.config import Settings, load_settings
from nurture.jobs.pending import PendingKeys
from nurture.jobs.ratelimit import Limiter, RateLimits, rate_limits
from nurture.jobs.settings import JobSettings, job_settings
from nurture.runtime import Runtime, open_runtime
from nurture.worker.loop import new_worker_id

log = logging.getLogger(__name__)

app = Celery("nurture", include=["nurture.jobs.tasks"])


@dataclass
class Context:
    """What a process needs to run or send tasks (one per process, made after a fork)."""

    rt: Runtime
    jobs: JobSettings
    pending: PendingKeys
    worker_id: str
    limits: RateLimits = field(default_factory=RateLimits)
    limiter: Limiter | None = None


_context: Context | None = None
_pid = 0


def configure(settings: Settings | None = None, *, rt: Runtime | None = None) -> Context:
    """(Re)build this process's context and the app's configuration from ``settings``
    (or from the already open runtime ``rt``)."""
    global _context, _pid
    if rt is None:
        rt = open_runtime(settings)  # attaches (configures) itself when a broker is set
        if _context is not None and _context.rt is rt and _pid == os.getpid():
            return _context
    js = job_settings(rt.settings)
    limit = js.task_time_limit
    app.conf.update(
        broker_url=js.broker,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # a message whose worker died unacknowledged comes back after this (Redis); the
        # scheduler re-sends lost work long before, from the database
        broker_transport_options={"visibility_timeout": int(limit) + 60},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=limit,
        task_soft_time_limit=limit * 0.8,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_default_queue=js.engine_queue,
        task_routes={"nurture.deliver": {"queue": js.delivery_queue}},
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    if _context is not None and _context.pending is not None:
        _context.pending.close()
    limits = rate_limits(rt.settings.extra)
    _context = Context(
        rt=rt,
        jobs=js,
        pending=PendingKeys(js.redis_url, ttl=js.pending_ttl, prefix=js.queue_prefix),
        worker_id=new_worker_id("celery"),
        limits=limits,
        limiter=Limiter(js.redis_url, prefix=js.queue_prefix) if limits.active else None,
    )
    _pid = os.getpid()
    return _context


def context() -> Context:
    """This process's context (rebuilt in a forked child: no connection crosses a fork)."""
    if _context is None or _pid != os.getpid():
        if _context is not None:  # inherited from the parent: drop its pooled connections
            _context.rt.db.engine.dispose(close=False)
        return configure(_context.rt.settings if _context is not None else load_settings())
    return _context


def broker_ping(timeout: float = 2.0) -> bool:
    """True when the broker answers within ``timeout`` seconds (``/readyz``)."""
    url = str(app.conf.broker_url or "")
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
            try:
                return bool(client.ping())
            finally:
                client.close()
        from kombu import Connection  # type: ignore[attr-defined]

        with Connection(url, connect_timeout=timeout) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        return True
    except Exception:
        return False
