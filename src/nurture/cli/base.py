"""The root command group and the helpers its commands share."""

from __future__ import annotations

import click

from nurture.config import ConfigError
from nurture.runtime import Runtime, open_runtime


@click.group()
@click.version_option(package_name="nurture")
def cli() -> None:
    """Nurture: marketing automation server."""


def runtime() -> Runtime:
    """Open settings and database, turning a configuration error into a clean exit."""
    try:
        return open_runtime()
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
