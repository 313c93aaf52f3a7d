"""At most one pending task per activity and kind: a key set when the task is sent and
deleted when it starts.

With Redis (``NURTURE_REDIS_URL``, or the broker when it is Redis) the key is shared by
every process: ``SET key 1 NX EX ttl``. The key expires after ``ttl`` seconds, so a task
lost from the broker (a Redis restart, a worker killed before it acknowledged) blocks
nothing for long: the scheduler finds the work in the database again and sends a new
task. Without Redis (RabbitMQ alone) each process keeps its own keys: at most one pending
task per activity and kind *per process*.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

class PendingKeys:
    def __init__(self, redis_url: str | None, *, ttl: float, prefix: str = "nurture") -> None:
        self.ttl = max(1, int(ttl))
        self.prefix = f"{prefix}:pending:"
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
            )
        self._local: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def take(self, key: str) -> bool:
        """True when no task of ``key`` is pending (the key is now set: send the task)."""
        if self._redis is not None:
            try:
                return bool(self._redis.set(self.prefix + key, b"1", nx=True, ex=self.ttl))
            except Exception:
                log.warning("pending-task key %s: Redis unreachable; sending anyway", key)
                return True
        now = time.monotonic()
        with self._lock:
            if self._local.get(key, 0.0) > now:
                return False
            self._local[key] = now + self.ttl
            return True

    def pending(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` have a task pending (unknown when Redis is unreachable: none)."""
        if not keys:
            return set()
        if self._redis is not None:
            try:
                values = self._redis.mget([self.prefix + k for k in keys])
            except Exception:
                return set()
            return {k for k, v in zip(keys, values, strict=True) if v is not None}
        now = time.monotonic()
        with self._lock:
            return {k for k in keys if self._local.get(k, 0.0) > now}

    def release(self, key: str) -> None:
        """The task of ``key`` started: the next change may send another one."""
        if self._redis is not None:
            try:
                self._redis.delete(self.prefix + key)
            except Exception:
                log.warning("pending-task key %s: Redis unreachable; it expires in %ss", key, self.ttl)
            return
        with self._lock:
            self._local.pop(key, None)

    def ping(self) -> bool:
        return bool(self._redis.ping()) if self._redis is not None else True

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
