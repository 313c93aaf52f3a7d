"""Shared rate limits: token-bucket reservations in Redis, and a throttled delivery round
against a real SMTP server (messages wait, none is dropped)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller

from nurture.clock import utcnow
from nurture.config import ConfigError, load_settings
from nurture.db import Database
from nurture.jobs import adapters
from nurture.jobs.ratelimit import Limiter, RateLimits, parse_rate, rate_limits, round_limit
from tests.channels.email.smtp_sink import Sink, free_port
from tests.jobs.cluster import REDIS_URL, two_step_campaign


def test_rates_parse_and_bad_ones_are_named() -> None:
    assert parse_rate("X", "50") == 50
    assert parse_rate("X", "600/m") == 10
    assert parse_rate("X", "3600 / h") == 1
    limits = rate_limits({"NURTURE_RATE_DOMAIN": "gmail.com=600/m, *=60/m", "NURTURE_RATE_GLOBAL": "100/s"})
    assert limits.domain_rate("gmail.com") == ("gmail.com", 10)
    assert limits.domain_rate("other.org") == ("other.org", 1)
    assert limits.slowest == 1
    assert round_limit(limits, batch=100, lease_seconds=120) == 40
    assert round_limit(RateLimits(), batch=100, lease_seconds=120) == 100
    for env in (
        {"NURTURE_RATE_GLOBAL": "fast"},
        {"NURTURE_RATE_CAMPAIGN": "0/s"},
        {"NURTURE_RATE_DOMAIN": "gmail.com"},
    ):
        with pytest.raises(ConfigError, match=next(iter(env))):
            rate_limits(env)


def test_two_workers_share_one_schedule_through_redis() -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    first, second = Limiter(REDIS_URL, prefix=prefix), Limiter(REDIS_URL, prefix=prefix)
    try:
        waits = [(first if i % 2 else second).reserve("domain:example.com", 10.0) for i in range(10)]
        # one bucket for both: the 10 reservations are spaced 0.1 s apart, never granted together
        assert waits[0] == 0
        assert all(b > a for a, b in zip(waits, waits[1:], strict=False))
        assert waits[-1] > 0.5  # ~0.9 s minus the time the ten calls took
        # another bucket is independent
        assert first.reserve("domain:other.org", 10.0) == 0
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}:rate:*"):
            client.delete(key)
        client.close()


class TimedSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.times.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


def test_a_throttled_round_waits_and_sends_everything(pg: Database, tmp_path: Path) -> None:
    from nurture.channels.email.context import EMAIL as email_service
    from nurture.engine.enrol import sync_campaigns
    from nurture.engine.execute import run_due

    sink = TimedSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings = load_settings({
        "NURTURE_DATA_DIR": str(tmp_path), "NURTURE_SECRET_KEY": "r" * 20,
        "NURTURE_DATABASE_URL": pg.url, "NURTURE_MAIL_DOMAIN": "news.example.com",
        "NURTURE_MAIL_FROM": "News <news@example.com>",
        "NURTURE_SMTP_URL": f"smtp://127.0.0.1:{port}?starttls=0",
    })
    email_service.configure(settings)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    try:
        campaign_id, step1, _ = two_step_campaign(pg, 8)
        now = utcnow()
        sync_campaigns(pg, now=now, full=True)
        assert run_due(pg, now=now, limit=100, worker_id="t", activity_id=step1).processed == 8
        limits = rate_limits({"NURTURE_RATE_DOMAIN": "example.com=5/s", "NURTURE_RATE_CAMPAIGN": "100/s"})
        limiter = Limiter(REDIS_URL, prefix=prefix)
        result = adapters.deliver_round(
            pg, channel="email", now=utcnow(), limit=100, lease=timedelta(seconds=60),
            worker_id="t", rate=(limits, limiter),
        )
        assert result.sent == 8 and result.failed == 0  # waited, none dropped
        assert len(sink.received) == 8
        # 8 messages to one domain at 5/s (a burst of 1): at least 7 intervals of 0.2 s
        assert sink.times[-1] - sink.times[0] >= 7 / 5 - 0.05
        # the campaign bucket was found from the signed Message-ID
        client = redis.Redis.from_url(REDIS_URL)
        assert client.exists(f"{prefix}:rate:campaign:{campaign_id}")
        client.close()
    finally:
        controller.stop()
        from nurture.channels.email import delivery

        email_service._context = None  # as the email integration tests leave it
        delivery.reset_transport()
