"""Engine commands: ``nurture worker`` and ``nurture tick``."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

import click

from nurture.cli.base import cli, runtime
from nurture.clock import parse_iso, utcnow
from nurture.runtime import Runtime


def _stop_on_signals(stop: Callable[[], None], message: str) -> None:
    """SIGTERM and SIGINT call ``stop`` (the loop then ends cleanly)."""

    def _stop(signum: int, frame: FrameType | None) -> None:
        click.echo(f"{message} (signal {signum})", err=True)
        stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


@cli.command()
@click.option("--batch-size", default=500, show_default=True, type=int)
@click.option("--poll", default=0.2, show_default=True, type=float, help="Idle poll interval (s).")
@click.option("--full-sync", default=300.0, show_default=True, type=float, help="Seconds between full enrolment syncs.")
@click.option("--id", "worker_id", default=None, help="Worker id (default: host-pid-random).")
@click.option(
    "--engine",
    type=click.Choice(["embedded", "celery"]),
    default="embedded",
    show_default=True,
    help="embedded: the engine loop in this process; celery: a Celery worker (NURTURE_BROKER_URL).",
)
@click.option("--concurrency", default=None, type=int, help="Celery: worker processes (default: CPUs).")
@click.option("--queues", default=None, help="Celery: queues to consume (default: <prefix>,<prefix>.delivery).")
def worker(
    batch_size: int,
    poll: float,
    full_sync: float,
    worker_id: str | None,
    engine: str,
    concurrency: int | None,
    queues: str | None,
) -> None:
    """Run the engine: continuous enrolment, due traces, event-window expiry (SIGTERM stops).

    With --engine celery, a Celery worker runs the tasks `nurture scheduler` and the web
    processes send; SIGTERM finishes the tasks in hand, then stops."""
    from nurture.channels.queue import default_lease
    from nurture.worker.loop import Worker

    rt = runtime()
    if engine == "celery":
        _celery_worker(rt, worker_id=worker_id, concurrency=concurrency, queues=queues)
        return
    try:
        lease = default_lease(rt.settings.extra)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    loop = Worker(
        rt.db,
        worker_id=worker_id,
        batch_size=batch_size,
        poll_interval=poll,
        full_sync_every=full_sync,
        lease=lease,
    )

    _stop_on_signals(loop.stop, "stopping after the current batch")
    click.echo(f"worker {loop.worker_id} running")
    loop.run()


@cli.command()
@click.option("--now", "now_text", default=None, help="ISO-8601 time to process as of (default: now).")
@click.option("--batch-size", default=500, show_default=True, type=int)
def tick(now_text: str | None, batch_size: int) -> None:
    """Process everything due as of --now (enrolment, expiries, due traces) and exit."""
    from nurture.worker.loop import tick as run_tick

    try:
        now = parse_iso(now_text) if now_text else utcnow()
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO-8601 time: {now_text}", param_hint="--now") from exc
    rt = runtime()
    result = run_tick(rt.db, now=now, batch_size=batch_size)
    t = result.traces
    click.echo(
        f"tick {now.isoformat()}: enrolled {result.enrolled}, processed {t.processed}, "
        f"rejected {t.rejected}, canceled {t.canceled}, error {t.error}, "
        f"waits expired {result.expired_waits}"
    )


@cli.command()
def scheduler() -> None:
    """Run the Celery engine's scheduler: find due work, send tasks (SIGTERM stops).

    Needs NURTURE_BROKER_URL. Safe if two are started: one holds the lock, the other stands by.
    """
    from nurture.jobs.app import configure
    from nurture.jobs.scheduler import Scheduler

    rt = runtime()
    if not rt.settings.extra.get("NURTURE_BROKER_URL"):
        raise click.ClickException("NURTURE_BROKER_URL is not set: the scheduler sends tasks to a broker")
    ctx = configure(rt=rt)
    sched = Scheduler(ctx)

    _stop_on_signals(sched.stop, "scheduler stopping")
    click.echo(f"scheduler sending to {ctx.jobs.broker}")
    sched.run()


def _celery_worker(rt: Runtime, *, worker_id: str | None, concurrency: int | None, queues: str | None) -> None:
    from nurture.jobs.app import app, configure

    if not rt.settings.extra.get("NURTURE_BROKER_URL"):
        raise click.ClickException("NURTURE_BROKER_URL is not set: a Celery worker needs a broker")
    js = configure(rt=rt).jobs
    metrics_port = rt.settings.extra.get("NURTURE_WORKER_METRICS_PORT", "").strip()
    if metrics_port:
        _serve_worker_metrics(rt, metrics_port)
    argv = [
        "worker",
        f"--loglevel={rt.settings.log_level}",
        f"--queues={queues or f'{js.engine_queue},{js.delivery_queue}'}",
        "--without-gossip",
        "--without-mingle",
        "--prefetch-multiplier=1",
    ]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if worker_id:
        argv.append(f"--hostname={worker_id}@%h")
    app.worker_main(argv)


def _serve_worker_metrics(rt: Runtime, port_text: str) -> None:
    """This worker's counters (summed over its pool processes) on their own HTTP port."""
    import os
    from pathlib import Path

    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise click.ClickException(f"NURTURE_WORKER_METRICS_PORT: expected a port number, got {port_text!r}")
    folder = Path(
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(rt.settings.data_dir / f"prometheus-{os.getpid()}"))
    )
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(int(port_text), registry=registry)
