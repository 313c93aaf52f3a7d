"""Prometheus metrics (``/metrics``).

Two kinds:

* **counters and histograms of this process** (traces executed per state, messages per
  channel and outcome, lease expiries, task latency): incremented by the code that did the
  work. With several processes (``nurture serve --workers N``, Celery workers) set
  ``PROMETHEUS_MULTIPROC_DIR`` to a directory they share (emptied before start): each
  process then writes its values to a file there and ``/metrics`` sums them;
* **the database's view, read at scrape time** (due backlog per campaign, traces per state,
  messages per channel and state): the same answer from every process, and true across
  crashes because the database is the source of truth.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import false, func, select

from nurture.channels.email.models import MailMessage
from nurture.channels.sms.models import SmsMessage
from nurture.clock import utcnow
from nurture.engine.execute import due_backlog
from nurture.engine.models import Trace

log = logging.getLogger(__name__)

TRACES_EXECUTED = Counter(
    "nurture_traces_executed", "Traces executed by this process's engine, by resulting state", ["state"]
)
MESSAGES = Counter(
    "nurture_messages_delivered",
    "Delivery outcomes recorded by this process, by channel and outcome",
    ["channel", "outcome"],
)
LEASE_EXPIRIES = Counter(
    "nurture_lease_expiries",
    "Sends found interrupted past their lease (recorded failed, never resent), by channel",
    ["channel"],
)
TASK_SECONDS = Histogram(
    "nurture_task_seconds", "Duration of engine tasks, by task", ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
TASK_LATENCY = Histogram(
    "nurture_task_latency_seconds", "Time from sending a task to its start, by task", ["task"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def count_batch(result: Any) -> None:
    """Count a :class:`~nurture.engine.execute.BatchResult`."""
    for state in ("processed", "rejected", "canceled", "error"):
        value = int(getattr(result, state, 0) or 0)
        if value:
            TRACES_EXECUTED.labels(state).inc(value)


def count_delivery(channel: str, result: Any) -> None:
    """Count a :class:`~nurture.channels.queue.DeliveryResult`."""
    for outcome in ("sent", "retried", "failed", "unknown"):
        value = int(getattr(result, outcome, 0) or 0)
        if value:
            MESSAGES.labels(channel, outcome).inc(value)
    if getattr(result, "unknown", 0):
        LEASE_EXPIRIES.labels(channel).inc(int(result.unknown))


class DatabaseCollector(Collector):
    """Gauges read from the database at each scrape."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now: datetime = utcnow()
        backlog = GaugeMetricFamily(
            "nurture_due_backlog", "Traces due now and not yet executed, by campaign", labels=["campaign"]
        )
        traces = GaugeMetricFamily("nurture_traces", "Traces by state", labels=["state"])
        messages = GaugeMetricFamily(
            "nurture_messages", "Outgoing messages by channel and state", labels=["channel", "state"]
        )
        try:
            with self.db.read() as session:
                for campaign_id, n in sorted(due_backlog(session, now=now, by="campaign").items()):
                    backlog.add_metric([str(campaign_id)], n)
                for state, n in session.execute(
                    select(Trace.state, func.count()).where(Trace.is_test == false()).group_by(Trace.state)
                ):
                    traces.add_metric([state], n)
                for channel, model in (("email", MailMessage), ("sms", SmsMessage)):
                    for state, n in session.execute(
                        select(model.state, func.count()).group_by(model.state)
                    ):
                        messages.add_metric([channel, state], n)
        except Exception:  # a scrape reports what it can, never raises
            log.exception("metrics: database unreachable")
            return
        yield backlog
        yield traces
        yield messages


def render(db: Any) -> tuple[bytes, str]:
    """The text exposition of every metric: (body, content type)."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    body = generate_latest(registry)
    db_registry = CollectorRegistry()
    db_registry.register(DatabaseCollector(db))
    return body + generate_latest(db_registry), CONTENT_TYPE_LATEST
