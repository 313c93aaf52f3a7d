"""Inbound mail commands: ``nurture inbound`` (pipe), ``nurture inbound-smtp``, ``nurture inbound-imap``.

For an MTA, pipe bounces and replies to ``nurture inbound`` (Postfix ``master.cf``)::

    nurture   unix  -       n       n       -       -       pipe
      flags=Rq user=nurture argv=/usr/local/bin/nurture inbound

It exits 0 once the message is handled (including messages that need no action) and 75
(``EX_TEMPFAIL``) when the database is unavailable, so the MTA keeps the message and retries.
"""

from __future__ import annotations

import imaplib
import signal
import sys
import threading
import time
from types import FrameType

import click

from nurture.cli.base import cli, runtime
from nurture.clock import utcnow

EX_TEMPFAIL = 75


@cli.command()
def inbound() -> None:
    """Handle one inbound message (bounce, reply, unsubscribe) read from standard input."""
    from sqlalchemy.exc import DBAPIError

    from nurture.channels.email import service
    from nurture.channels.email.inbound_smtp import InboundTemporaryError
    from nurture.channels.email.receive import handle_inbound

    raw = sys.stdin.buffer.read()
    rt = runtime()
    service.configure(rt.settings)
    try:
        result = handle_inbound(rt.db, raw, now=utcnow())
    except (InboundTemporaryError, DBAPIError) as exc:
        click.echo(f"temporary failure, retry later: {exc}", err=True)
        sys.exit(EX_TEMPFAIL)
    finally:
        rt.db.dispose()
    click.echo(f"{result.kind.value} trace={result.trace_id or '-'}", err=True)


@cli.command("inbound-smtp")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2525, show_default=True, type=int)
@click.option("--domain", "domains", multiple=True, help="Accept recipients of this domain only (repeatable).")
def inbound_smtp(host: str, port: int, domains: tuple[str, ...]) -> None:
    """Listen for bounces and replies over SMTP (aiosmtpd); SIGTERM stops."""
    from nurture.channels.email import service
    from nurture.channels.email.inbound_smtp import InboundEnvelope, start_listener
    from nurture.channels.email.receive import handle_inbound

    rt = runtime()
    service.configure(rt.settings)

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
    from nurture.channels.email import service
    from nurture.channels.email.imap import parse_imap_url, poll_imap
    from nurture.channels.email.receive import handle_inbound

    rt = runtime()
    url = rt.settings.extra.get("NURTURE_IMAP_URL", "").strip()
    if not url:
        raise click.ClickException("NURTURE_IMAP_URL is not set")
    config = parse_imap_url(url)
    service.configure(rt.settings)
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
