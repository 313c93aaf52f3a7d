"""Sending rate limits shared by every worker: token buckets in Redis.

Settings (each optional; a rate is ``N/s``, ``N/m`` or ``N/h``, a bare number is per second):

* ``NURTURE_RATE_GLOBAL``: every message of every channel, all workers together;
* ``NURTURE_RATE_CAMPAIGN``: the messages of any one campaign;
* ``NURTURE_RATE_DOMAIN``: per recipient domain, ``gmail.com=600/m,yahoo.com=300/m`` (and
  ``*=N/m`` for every other domain, each its own bucket).

A message **waits** for its tokens, it is never dropped nor failed: a bucket hands out
reservations (the Lua script below runs atomically in Redis, on Redis's clock, so workers
on several machines share one schedule), and the sender sleeps until its turn. The
delivery task sizes its round so the waits fit well inside the claim lease
(:func:`round_limit`). Without Redis the buckets are kept per process.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from nurture.config import ConfigError

log = logging.getLogger(__name__)

#: reserve one token; returns the seconds to wait for it (tokens may go negative: those
#: are later reservations). KEYS[1]: bucket; ARGV: rate per second, burst.
RESERVE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local data = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(data[1]) or burst
local at = tonumber(data[2]) or t
tokens = math.min(burst, tokens + (t - at) * rate) - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(t))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 60)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(name: str, value: str) -> float:
    """Messages per second of ``N``, ``N/s``, ``N/m``, ``N/h``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*", value)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{name}: expected a rate like 50/s, 600/m or 1000/h, got {value!r}")
    return float(match.group(1)) / _UNITS[match.group(2) or "s"]


@dataclass(frozen=True)
class RateLimits:
    global_rate: float | None = None
    campaign_rate: float | None = None
    domain_rates: Mapping[str, float] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.global_rate or self.campaign_rate or self.domain_rates)

    @property
    def slowest(self) -> float | None:
        rates = [r for r in (self.global_rate, self.campaign_rate, *self.domain_rates.values()) if r]
        return min(rates) if rates else None

    def domain_rate(self, domain: str) -> tuple[str, float] | None:
        rate = self.domain_rates.get(domain)
        if rate is not None:
            return domain, rate
        rate = self.domain_rates.get("*")
        return (domain, rate) if rate is not None else None


def rate_limits(extra: Mapping[str, str]) -> RateLimits:
    domains: dict[str, float] = {}
    for part in (extra.get("NURTURE_RATE_DOMAIN") or "").split(","):
        if not part.strip():
            continue
        domain, sep, rate = part.partition("=")
        if not sep or not domain.strip():
            raise ConfigError(f"NURTURE_RATE_DOMAIN: expected domain=rate pairs, got {part!r}")
        domains[domain.strip().lower()] = parse_rate("NURTURE_RATE_DOMAIN", rate)
    raw_global = extra.get("NURTURE_RATE_GLOBAL") or ""
    raw_campaign = extra.get("NURTURE_RATE_CAMPAIGN") or ""
    return RateLimits(
        global_rate=parse_rate("NURTURE_RATE_GLOBAL", raw_global) if raw_global.strip() else None,
        campaign_rate=parse_rate("NURTURE_RATE_CAMPAIGN", raw_campaign) if raw_campaign.strip() else None,
        domain_rates=domains,
    )


def round_limit(limits: RateLimits, *, batch: int, lease_seconds: float) -> int:
    """Messages one delivery round may claim: the slowest bucket must let them all go
    within a third of the lease (a claimed message waits while its lease runs)."""
    slowest = limits.slowest
    if slowest is None:
        return batch
    return max(1, min(batch, int(slowest * lease_seconds / 3)))


class Limiter:
    """Reservations in token buckets (one per key), shared through Redis when given."""

    def __init__(self, redis_url: str | None, *, prefix: str = "nurture", burst: float = 1.0) -> None:
        self.prefix = f"{prefix}:rate:"
        self.burst = burst
        self._script: Any = None
        if redis_url:
            import redis

            client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
            self._script = client.register_script(RESERVE)
        self._local: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, rate: float) -> float:
        """Reserve one token of bucket ``key`` (``rate`` per second); the seconds to wait."""
        burst = max(self.burst, 1.0)
        if self._script is not None:
            return float(self._script(keys=[self.prefix + key], args=[rate, burst]))
        with self._lock:  # the same arithmetic, in this process
            now = time.monotonic()
            tokens, at = self._local.get(key, (burst, now))
            tokens = min(burst, tokens + (now - at) * rate) - 1
            self._local[key] = (tokens, now)
            return 0.0 if tokens >= 0 else -tokens / rate

    def wait(self, buckets: Sequence[tuple[str, float]], sleep: Callable[[float], None] = time.sleep) -> float:
        """Reserve one token in each bucket and sleep until all are due; the seconds slept."""
        delay = max((self.reserve(key, rate) for key, rate in buckets), default=0.0)
        if delay > 0:
            sleep(delay)
        return delay


class RateLimitedTransport:
    """An email transport that waits for the rate limits before each send."""

    def __init__(
        self,
        inner: Any,
        limits: RateLimits,
        limiter: Limiter,
        campaign_of: Callable[[bytes], int | None] | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.limits = limits
        self.limiter = limiter
        self.campaign_of = campaign_of
        self.waited = 0.0

    def buckets(self, message: EmailMessage | bytes, recipients: Sequence[str]) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        if self.limits.global_rate:
            found.append(("global", self.limits.global_rate))
        if self.limits.campaign_rate and self.campaign_of is not None:
            raw = message if isinstance(message, bytes) else message.as_bytes()
            campaign = self.campaign_of(raw)
            if campaign is not None:
                found.append((f"campaign:{campaign}", self.limits.campaign_rate))
        for domain in sorted({r.rpartition("@")[2].lower() for r in recipients}):
            rule = self.limits.domain_rate(domain)
            if rule is not None:
                found.append((f"domain:{rule[0]}", rule[1]))
        return found

    def send(self, message: EmailMessage | bytes, *, envelope_from: str, recipients: Sequence[str]) -> Any:
        self.waited += self.limiter.wait(self.buckets(message, recipients))
        return self.inner.send(message, envelope_from=envelope_from, recipients=recipients)

    def close(self) -> None:
        self.inner.close()
