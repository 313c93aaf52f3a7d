"""The Celery tasks. Each calls the engine's own service functions (the ones the embedded
runner calls: :func:`~nurture.engine.execute.run_due`,
:func:`~nurture.engine.enrol.sync_campaigns`, the channels' delivery rounds through
:mod:`nurture.jobs.adapters`), so both engines behave the same.

Every task first releases its "pending" key (:mod:`nurture.jobs.pending`), so work that
arrives while it runs sends the next task; a task that found a full batch sends its own
continuation. Tasks are idempotent: the database decides what runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError

from nurture.campaigns.activities import begin_activities
from nurture.campaigns.models import Activity
from nurture.channels.delivery import channel_names
from nurture.channels.queue import default_lease
from nurture.clock import utcnow
from nurture.engine.enrol import sync_campaigns
from nurture.engine.execute import run_due
from nurture.jobs import adapters
from nurture.jobs.app import app, context
from nurture.metrics import TASK_LATENCY, TASK_SECONDS, count_batch, count_delivery

log = logging.getLogger(__name__)

MIN_BATCH = 50
_RETRY: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError, DBAPIError, ConnectionError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 20,
}


def _task(name: str) -> Callable[[Callable[..., Any]], Any]:
    """``app.task`` with the shared options (typed for mypy: Celery has no annotations)."""
    decorator: Callable[[Callable[..., Any]], Any] = app.task(name=name, **_RETRY)
    return decorator


def _started(task: Any, name: str) -> float:
    sent = (task.request.headers or {}).get("nurture_sent") if task.request else None
    if isinstance(sent, int | float):
        TASK_LATENCY.labels(name).observe(max(0.0, time.time() - float(sent)))
    return time.monotonic()


def _send(task: Any, key: str, args: tuple[Any, ...]) -> bool:
    """Send ``task`` unless one of ``key`` is pending; never raises (the scheduler re-finds
    whatever a failed send leaves in the database)."""
    ctx = context()
    if not ctx.pending.take(key):
        return False
    try:
        task.apply_async(args, headers={"nurture_sent": time.time()}, retry=False)
    except Exception:
        ctx.pending.release(key)
        log.warning("broker unreachable: task %s not sent (the scheduler will find the work)", key)
        return False
    return True


def send_run(activity_id: int, backlog: int = 0) -> bool:
    """Send "run due traces of activity ``activity_id``" (at most one pending)."""
    return _send(run_activity, f"run:{activity_id}", (activity_id, backlog))


def send_runs(activity_ids: Iterable[int]) -> int:
    return sum(send_run(a) for a in sorted(set(activity_ids)))


def send_deliver(channel: str) -> bool:
    return _send(deliver, f"deliver:{channel}", (channel,))


def send_enrol(model: str, full: bool) -> bool:
    return _send(enrol_model, f"enrol:{model}:{int(full)}", (model, full))


def batch_for(backlog: int, cap: int) -> int:
    """Traces per task: the backlog seen when the task was sent, within [MIN_BATCH, cap]."""
    return max(MIN_BATCH, min(cap, backlog or MIN_BATCH * 10))


@_task("nurture.run_activity")
def run_activity(self: Any, activity_id: int, backlog: int = 0) -> dict[str, int]:
    """Run one batch of the due traces of activity ``activity_id``; follow-ups at once."""
    ctx = context()
    ctx.pending.release(f"run:{activity_id}")
    started = _started(self, "run_activity")
    limit = batch_for(backlog, ctx.jobs.task_batch)
    result = run_due(ctx.rt.db, now=utcnow(), limit=limit, worker_id=ctx.worker_id, activity_id=activity_id)
    count_batch(result)
    if result.claimed >= limit:
        send_run(activity_id, max(backlog - result.claimed, limit))
    if result.processed:
        with ctx.rt.db.read() as session:
            activity = session.get(Activity, activity_id)
            kind = activity.activity_type if activity is not None else None
            children = list(
                session.scalars(
                    select(Activity.id).where(
                        Activity.parent_id == activity_id, Activity.trigger_type == "activity"
                    )
                )
            )
        if kind and kind in channel_names():  # the step queued messages for its channel
            send_deliver(kind)
        send_runs(children)  # children due at once run now; later ones the scheduler finds
    TASK_SECONDS.labels("run_activity").observe(time.monotonic() - started)
    log.info(
        "activity %s: %d claimed, %d processed", activity_id, result.claimed, result.processed,
        extra={"activity_id": activity_id, "claimed": result.claimed},
    )
    return {"claimed": result.claimed, "processed": result.processed}


@_task("nurture.deliver")
def deliver(self: Any, channel: str) -> dict[str, int]:
    """One delivery round of ``channel`` (email, sms, webhook); continues while full."""
    ctx = context()
    ctx.pending.release(f"deliver:{channel}")
    started = _started(self, "deliver")
    limit = ctx.jobs.delivery_batch
    result = adapters.deliver_round(
        ctx.rt.db,
        channel=channel,
        now=utcnow(),
        limit=limit,
        lease=default_lease(ctx.rt.settings.extra),
        worker_id=ctx.worker_id,
        rate=(ctx.limits, ctx.limiter) if ctx.limiter is not None else None,
    )
    count_delivery(channel, result)
    if result.claimed >= limit:
        send_deliver(channel)
    TASK_SECONDS.labels("deliver").observe(time.monotonic() - started)
    return {"claimed": result.claimed, "sent": result.sent, "failed": result.failed}


@_task("nurture.enrol_model")
def enrol_model(self: Any, model: str, full: bool = False) -> dict[str, int]:
    """Enrol the records of ``model`` in its running campaigns (``full``: every campaign's
    full pass, else only campaigns awaiting their first), then run their first steps."""
    ctx = context()
    ctx.pending.release(f"enrol:{model}:{int(full)}")
    started = _started(self, "enrol_model")
    now = utcnow()
    enrolled = sync_campaigns(ctx.rt.db, now=now, full=full, model=model)
    if enrolled:
        with ctx.rt.db.read() as session:
            send_runs(begin_activities(session, model=model))
    TASK_SECONDS.labels("enrol_model").observe(time.monotonic() - started)
    return {"enrolled": enrolled}


@_task("nurture.process_inbound")
def process_inbound(self: Any, raw: str) -> dict[str, str]:
    """Process one received message (``raw``: its source, latin-1 text of the bytes)."""
    ctx = context()
    started = _started(self, "process_inbound")
    result = adapters.handle_inbound(ctx.rt.db, raw.encode("latin-1"), now=utcnow())
    TASK_SECONDS.labels("process_inbound").observe(time.monotonic() - started)
    return {"kind": str(getattr(result, "kind", ""))}


def send_inbound(raw: bytes) -> None:
    """Queue a received message for a worker (no de-duplication: each message is work)."""
    process_inbound.apply_async((raw.decode("latin-1"),), headers={"nurture_sent": time.time()})
