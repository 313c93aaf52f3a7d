"""Audience commands: ``nurture count MODEL 'DOMAIN'``."""

from __future__ import annotations

import sys

import click

from nurture.cli.base import cli, runtime
from nurture.clock import utcnow


@cli.command("count")
@click.argument("model")
@click.argument("domain", required=False, default="[]")
@click.option(
    "--include-archived", is_flag=True, help="Count archived records too (active = false)."
)
def count_command(model: str, domain: str, include_archived: bool) -> None:
    """Print how many MODEL records match DOMAIN (JSON or Odoo Python-literal text).

    \b
    Examples:
      nurture count contact '[["tags.name", "=", "VIP"]]'
      nurture count lead "[('stage', 'in', ['New', 'Qualified']), ('email', '!=', False)]"

    A filter that cannot be used prints the reason and exits with status 2.
    """
    from nurture.audience import FilterError, count_matching

    rt = runtime()
    if rt.settings.is_sqlite:
        rt.db.migrate()
    try:
        with rt.db.read() as session:
            count = count_matching(
                session, model, domain, now=utcnow(), include_archived=include_archived
            )
    except FilterError as exc:
        click.echo(f"invalid filter: {exc.message}", err=True)
        sys.exit(2)
    finally:
        rt.db.dispose()
    click.echo(str(count))
