"""Inbound mail commands: ``nurture inbound`` (pipe), ``nurture inbound-smtp``, ``nurture inbound-imap``.

For an MTA, pipe bounces and replies to ``nurture inbound`` (Postfix ``master.cf``, the full
setup is in the README)::

    nurture   unix  -       n       n       -       -       pipe
      flags=Rq user=nurture argv=/usr/bin/env NURTURE_CONFIG_FILE=/etc/nurture/nurture.env
      /opt/nurture/.venv/bin/nurture inbound

It exits 0 once the message is handled (including messages that need no action) and 75
(``EX_TEMPFAIL``) when it is not configured (no explicit database URL or secret key), when
the key cannot verify the server's tokens, or when the database is unavailable or not
migrated, so the MTA keeps the message and retries. It never generates a key.
"""

from __future__ import annotations

import imaplib
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from nurture.cli.base import cli, runtime
from nurture.clock import utcnow
from nurture.runtime import Runtime

EX_TEMPFAIL = 75
#: ``nurture inbound`` never runs on defaults: these must be set explicitly
REQUIRED_FOR_INBOUND = ("NURTURE_DATABASE_URL", "NURTURE_SECRET_KEY")


def _tempfail(message: str) -> NoReturn:
    click.echo(f"nurture inbound: {message}; exit 75 (EX_TEMPFAIL): the MTA keeps the message "
               "and retries", err=True)
    sys.exit(EX_TEMPFAIL)


def _inbound_runtime() -> Runtime:
    """The runtime of the MTA pipe, or exit 75: it never falls back to defaults.

    A generated secret key or a new SQLite file under the pipe's working directory would
    match no message and drop every bounce and reply, so both must be configured
    explicitly (environment or ``NURTURE_CONFIG_FILE``), the database must exist and be
    migrated, and the key must verify the tokens of the messages the server sent.
    """
    from nurture.channels.email.receive import key_problem
    from nurture.config import ConfigError, load_settings, unset_variables
    from nurture.runtime import open_runtime
    from nurture.tracking.tokens import TokenSigner

    try:
        missing = unset_variables(REQUIRED_FOR_INBOUND)
        if missing:
            _tempfail(
                f"{' and '.join(missing)} not set (in the environment or the file named by "
                "NURTURE_CONFIG_FILE); it must be the server's"
            )
        settings = load_settings()
    except ConfigError as exc:
        _tempfail(f"configuration error: {exc}")
    if settings.is_sqlite:
        path = make_url(settings.database_url).database
        if path and path != ":memory:" and not Path(path).is_file():
            _tempfail(f"no database file {path} (NURTURE_DATABASE_URL)")
    rt = open_runtime(settings)
    try:
        if not rt.db.is_up_to_date():
            _tempfail("the database of NURTURE_DATABASE_URL is not migrated (not the server's?)")
        with rt.db.read() as session:
            problem = key_problem(session, TokenSigner.from_settings(settings))
        if problem:
            _tempfail(problem)
    except DBAPIError as exc:
        rt.db.dispose()
        _tempfail(f"database unavailable: {exc}")
    except SystemExit:
        rt.db.dispose()
        raise
    return rt


@cli.command()
def inbound() -> None:
    """Handle one inbound message (bounce, reply, unsubscribe) read from standard input.

    Exits 75 (EX_TEMPFAIL) without touching the message when NURTURE_DATABASE_URL or
    NURTURE_SECRET_KEY is not configured, the database is unavailable or not migrated, or
    the key cannot verify the server's tokens.
    """
    from nurture.channels.email import context
    from nurture.channels.email.inbound_smtp import InboundTemporaryError
    from nurture.channels.email.receive import handle_inbound

    raw = sys.stdin.buffer.read()
    rt = _inbound_runtime()
    context.configure(rt.settings)
    try:
        result = handle_inbound(rt.db, raw, now=utcnow())
    except (InboundTemporaryError, DBAPIError) as exc:
        _tempfail(f"temporary failure, retry later: {exc}")
    finally:
        rt.db.dispose()
    click.echo(f"{result.kind.value} trace={result.trace_id or '-'}", err=True)


@cli.command("inbound-smtp")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2525, show_default=True, type=int)
@click.option("--domain", "domains", multiple=True, help="Accept recipients of this domain only (repeatable).")
def inbound_smtp(host: str, port: int, domains: tuple[str, ...]) -> None:
    """Listen for bounces and replies over SMTP (aiosmtpd); SIGTERM stops."""
    from nurture.channels.email import context
    from nurture.channels.email.inbound_smtp import InboundEnvelope, start_listener
    from nurture.channels.email.receive import handle_inbound

    rt = runtime()
    context.configure(rt.settings)

    def on_message(envelope: InboundEnvelope) -> None:
        handle_inbound(rt.db, envelope.raw, now=utcnow())

    controller = start_listener(on_message, host=host, port=port, accept_domains=domains or None)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"inbound SMTP listening on {host}:{port}")
    try:
        stop.wait()
    finally:
        controller.stop()
        rt.db.dispose()


@cli.command("inbound-imap")
@click.option("--interval", default=60.0, show_default=True, type=float, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Poll once and exit.")
def inbound_imap(interval: float, once: bool) -> None:
    """Poll the mailbox of NURTURE_IMAP_URL for bounces and replies."""
    from nurture.channels.email import context
    from nurture.channels.email.imap import parse_imap_url, poll_imap
    from nurture.channels.email.receive import handle_inbound

    rt = runtime()
    url = rt.settings.extra.get("NURTURE_IMAP_URL", "").strip()
    if not url:
        raise click.ClickException("NURTURE_IMAP_URL is not set")
    config = parse_imap_url(url)
    context.configure(rt.settings)
    stopping = threading.Event()

    def on_message(raw: bytes) -> None:
        handle_inbound(rt.db, raw, now=utcnow())

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    if not once:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    try:
        while True:
            started = time.monotonic()
            try:
                result = poll_imap(config, on_message)
                click.echo(f"imap: handled {result.handled}, failed {result.failed}"
                           + (", deferred" if result.deferred else ""), err=True)
            except (OSError, imaplib.IMAP4.error) as exc:
                click.echo(f"imap: cannot poll: {exc}", err=True)
                if once:
                    sys.exit(EX_TEMPFAIL)
            if once or stopping.wait(max(0.0, interval - (time.monotonic() - started))):
                break
    finally:
        rt.db.dispose()
