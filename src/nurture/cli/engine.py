"""Engine commands: ``nurture worker`` and ``nurture tick``."""

from __future__ import annotations

import signal
from types import FrameType

import click

from nurture.cli.base import cli, runtime
from nurture.clock import parse_iso, utcnow


@cli.command()
@click.option("--batch-size", default=500, show_default=True, type=int)
@click.option("--poll", default=0.2, show_default=True, type=float, help="Idle poll interval (s).")
@click.option("--full-sync", default=300.0, show_default=True, type=float, help="Seconds between full enrolment syncs.")
@click.option("--id", "worker_id", default=None, help="Worker id (default: host-pid-random).")
def worker(batch_size: int, poll: float, full_sync: float, worker_id: str | None) -> None:
    """Run the engine: continuous enrolment, due traces, event-window expiry (SIGTERM stops)."""
    from nurture.channels.queue import default_lease
    from nurture.engine.loop import Worker

    rt = runtime()
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

    def _stop(signum: int, frame: FrameType | None) -> None:
        click.echo(f"stopping after the current batch (signal {signum})", err=True)
        loop.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"worker {loop.worker_id} running")
    loop.run()


@cli.command()
@click.option("--now", "now_text", default=None, help="ISO-8601 time to process as of (default: now).")
@click.option("--batch-size", default=500, show_default=True, type=int)
def tick(now_text: str | None, batch_size: int) -> None:
    """Process everything due as of --now (enrolment, expiries, due traces) and exit."""
    from nurture.engine.loop import tick as run_tick

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
