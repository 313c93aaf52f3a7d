"""``nurture migrate`` and ``nurture serve``."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nurture.cli.base import cli, runtime
from nurture.runtime import Runtime

if TYPE_CHECKING:
    from fastapi import FastAPI

    from nurture.worker.runner import InProcessRunner


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    rt = runtime()
    rt.db.migrate()
    click.echo("database is up to date")


def _runner(
    rt: Runtime, prepare: Callable[[Callable[[], bool]], None] | None = None
) -> InProcessRunner | None:
    """The in-process worker, unless NURTURE_EMBEDDED_WORKER is false, or a broker is set
    (the Celery engine runs the work) and NURTURE_EMBEDDED_WORKER was not asked for."""
    from nurture.worker.runner import InProcessRunner

    extra = rt.settings.extra
    if not rt.settings.embedded_worker:
        return None
    if extra.get("NURTURE_BROKER_URL") and "NURTURE_EMBEDDED_WORKER" not in extra:
        return None
    return InProcessRunner(rt, prepare=prepare)


def web_app() -> FastAPI:
    """The app of one web process of `nurture serve --workers N` (uvicorn factory)."""
    from nurture.web.app import create_app

    rt = runtime()
    return create_app(rt, runner=_runner(rt))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-demo", is_flag=True, help="Do not load demo data into an empty database.")
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64),
    help="Web processes sharing the port (metrics summed across them).",
)
def serve(host: str, port: int, no_demo: bool, workers: int) -> None:
    """Start the web server.

    Embedded mode (SQLite): migrates, loads demo data on first start, and runs the
    worker in-process. With PostgreSQL, run `nurture migrate` and `nurture worker`
    separately (set NURTURE_EMBEDDED_WORKER=true to keep an in-process worker too).
    With NURTURE_BROKER_URL set, the Celery workers run the engine (no in-process worker
    unless NURTURE_EMBEDDED_WORKER=true).
    """
    import uvicorn

    from nurture.web.app import create_app

    rt = runtime()
    if rt.settings.is_sqlite:
        rt.db.migrate()
    elif not rt.db.is_up_to_date():
        raise click.ClickException("database schema is out of date: run `nurture migrate`")
    demo_history = None
    if not no_demo:
        from nurture.demo import history_loader
        from nurture.records.demo import load_demo_if_empty

        if load_demo_if_empty(rt.db):
            click.echo("demo data loaded")
            # the demo campaigns' three weeks of history are made by the engine thread
            # before its loop starts: the server answers meanwhile
            demo_history = history_loader(rt.db)
    runner = _runner(rt, prepare=demo_history) if workers == 1 else None
    if demo_history is not None and runner is None:
        demo_history(lambda: False)
    click.echo(f"Nurture listening on http://{host}:{port} ({rt.db.dialect}, {workers} process(es))")
    _announce_setup_link(rt, host, port)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler
    # that was installed before it; a no-op handler makes that graceful stop exit 0.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    level = rt.settings.log_level.lower()
    if workers > 1:
        rt.db.dispose()
        # each process counts into files of one directory; /metrics sums them
        metrics_dir = Path(os.environ.setdefault(
            "PROMETHEUS_MULTIPROC_DIR", str(rt.settings.data_dir / "prometheus")
        ))
        metrics_dir.mkdir(parents=True, exist_ok=True)
        for stale in metrics_dir.glob("*.db"):
            stale.unlink()
        uvicorn.run(
            "nurture.cli.server:web_app", factory=True, workers=workers,
            host=host, port=port, log_level=level,
        )
    else:
        uvicorn.run(create_app(rt, runner=runner), host=host, port=port, log_level=level)
    click.echo("Nurture stopped")


def _announce_setup_link(rt: Runtime, host: str, port: int) -> None:
    """While nobody can administer (first start), print and log the one-time setup link."""
    import logging

    from nurture.accounts.setup import make_setup_token, setup_needed
    from nurture.clock import utcnow

    with rt.db.read() as session:
        if not setup_needed(session):
            return
    token = make_setup_token(rt.settings.secret_key, now=utcnow())
    base = rt.settings.base_url.rstrip("/") if "NURTURE_BASE_URL" in rt.settings.extra else ""
    url = f"{base or f'http://{host}:{port}'}/setup?token={token}"
    line = f"Create the administrator account (link valid for one hour): {url}"
    click.echo(line)
    logging.getLogger("nurture.setup").warning(line)
