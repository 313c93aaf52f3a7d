"""The Celery engine's parts on their own: settings, pending keys (real Redis), the
scheduler lock (PostgreSQL advisory lock, file lock), one scheduler pass."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from nurture.config import ConfigError, load_settings
from nurture.db import Database
from nurture.jobs.pending import PendingKeys
from nurture.jobs.scheduler import SchedulerLock
from nurture.jobs.settings import job_settings
from tests.jobs.cluster import REDIS_URL


def _settings(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings({"NURTURE_DATA_DIR": str(tmp_path), "NURTURE_SECRET_KEY": "x" * 20, **env})


def test_settings_default_to_redis_and_name_bad_values(tmp_path: Path) -> None:
    js = job_settings(_settings(tmp_path))
    assert js.broker_url is None and js.broker == "redis://127.0.0.1:6379/0"
    js = job_settings(_settings(tmp_path, NURTURE_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//"))
    assert js.redis_url is None  # RabbitMQ: pending keys stay in the process
    js = job_settings(_settings(tmp_path, NURTURE_BROKER_URL="redis://127.0.0.1:6379/3"))
    assert js.redis_url == "redis://127.0.0.1:6379/3"
    with pytest.raises(ConfigError, match="NURTURE_BROKER_URL"):
        job_settings(_settings(tmp_path, NURTURE_BROKER_URL="http://example.com"))
    with pytest.raises(ConfigError, match="NURTURE_TASK_BATCH"):
        job_settings(_settings(tmp_path, NURTURE_TASK_BATCH="lots"))
    with pytest.raises(ConfigError, match="NURTURE_QUEUE_PREFIX"):
        job_settings(_settings(tmp_path, NURTURE_QUEUE_PREFIX="no spaces"))


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
def test_pending_keys_one_at_a_time(shared: bool) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    keys = PendingKeys(REDIS_URL if shared else None, ttl=30, prefix=prefix)
    other = PendingKeys(REDIS_URL if shared else None, ttl=30, prefix=prefix)
    try:
        assert keys.take("run:1")
        assert not keys.take("run:1")  # already pending
        assert keys.take("run:2")
        # another process sees the same keys only through Redis
        assert other.take("run:1") is (not shared)
        keys.release("run:1")
        assert keys.take("run:1")
        if shared:
            ttl = redis.Redis.from_url(REDIS_URL).ttl(f"{prefix}:pending:run:1")
            assert 0 < ttl <= 30  # a lost task blocks nothing for long
    finally:
        keys.close()
        other.close()


def test_pending_keys_without_redis_reachable_send_anyway() -> None:
    keys = PendingKeys("redis://127.0.0.1:1/0", ttl=5)
    assert keys.take("run:1") and keys.take("run:1")  # the database decides what runs


def _ctx(db: Database, data_dir: Path) -> SimpleNamespace:
    return SimpleNamespace(rt=SimpleNamespace(db=db, settings=SimpleNamespace(data_dir=data_dir)))


def test_one_scheduler_holds_the_lock(database: Database, tmp_path: Path) -> None:
    first = SchedulerLock(_ctx(database, tmp_path))  # type: ignore[arg-type]
    second = SchedulerLock(_ctx(database, tmp_path))  # type: ignore[arg-type]
    try:
        assert first.acquire()
        assert first.acquire()  # still held
        assert not second.acquire()
        first.release()  # the first one stops: the other takes over
        assert second.acquire()
        assert not first.acquire()
    finally:
        first.release()
        second.release()


def test_scheduler_pass_sends_one_task_per_activity_and_refinds_lost_ones(
    pg: Database, tmp_path: Path
) -> None:
    """Due work → one task per activity however many passes run; tasks lost from the
    broker (queue emptied, as by a Redis restart) are sent again once their key expires."""
    import time

    from nurture.engine.enrol import sync_campaigns
    from nurture.jobs.app import configure
    from nurture.jobs.scheduler import Scheduler
    from nurture.runtime import Runtime
    from tests.jobs.cluster import two_step_campaign

    prefix = f"nurture-test-{uuid.uuid4().hex[:8]}"
    settings = _settings(
        tmp_path,
        NURTURE_DATABASE_URL=pg.url,
        NURTURE_BROKER_URL=REDIS_URL,
        NURTURE_QUEUE_PREFIX=prefix,
        NURTURE_PENDING_TTL="1",
    )
    ctx = configure(rt=Runtime(settings=settings, db=pg))  # no hooks: this process only sends
    _campaign, step1, _step2 = two_step_campaign(pg, 30)
    from nurture.clock import utcnow

    sync_campaigns(pg, now=utcnow(), full=True)
    broker = redis.Redis.from_url(REDIS_URL)
    try:
        sched = Scheduler(ctx)
        first = sched.run_pass()
        assert first.backlog == 30 and first.run_sent == 1
        assert first.enrol_sent == 1  # the first pass is a full enrolment pass
        for _ in range(3):  # the workers are behind: nothing more is sent
            again = sched.run_pass()
            assert (again.run_sent, again.enrol_sent) == (0, 0)
        assert broker.llen(prefix) == 2
        broker.delete(prefix)  # the broker lost it
        time.sleep(1.2)  # the pending key expires
        assert sched.run_pass().run_sent == 1
        assert broker.llen(prefix) == 1
        sched.lock.release()
    finally:
        broker.delete(prefix, f"{prefix}.delivery")
        for key in broker.scan_iter(f"{prefix}:*"):
            broker.delete(key)
        broker.close()
        ctx.pending.close()
