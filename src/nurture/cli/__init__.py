"""The ``nurture`` command. Each domain adds its commands in its own module below."""

from __future__ import annotations

import sys

import click

from nurture.cli import accounts as _accounts  # noqa: E402,F401
from nurture.cli import audience as _audience  # noqa: E402,F401
from nurture.cli import campaign_templates as _campaign_templates  # noqa: E402,F401
from nurture.cli import email as _email  # noqa: E402,F401
from nurture.cli import engine as _engine  # noqa: E402,F401
from nurture.cli import records as _records  # noqa: E402,F401

# Importing the modules registers their commands on ``cli``.
from nurture.cli import server as _server  # noqa: E402,F401
from nurture.cli import sms as _sms  # noqa: E402,F401
from nurture.cli.base import cli
from nurture.config import ConfigError


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)


__all__ = ["cli", "main"]
