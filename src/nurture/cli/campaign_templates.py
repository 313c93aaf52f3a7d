"""Campaign template commands: ``nurture templates`` and ``nurture templates create NAME``."""

from __future__ import annotations

import click
from sqlalchemy import select

from nurture.cli.base import cli, runtime
from nurture.clock import utcnow
from nurture.errors import NurtureError


@cli.group("templates", invoke_without_command=True)
@click.pass_context
def templates(ctx: click.Context) -> None:
    """List the campaign templates (create one with ``nurture templates create NAME``)."""
    if ctx.invoked_subcommand is not None:
        return
    from nurture.campaign_templates import list_templates

    for template in list_templates():
        click.echo(
            f"{template.key:<24} {template.title:<24} [{template.model}] {template.description}"
        )


@templates.command("create")
@click.argument("name")
@click.option("--name", "campaign_name", help="Campaign name (default: the template's title).")
@click.option("--responsible", metavar="LOGIN", help="Login of the campaign's responsible user.")
@click.option("--website", help="Where the emails' call-to-action buttons lead (http(s) URL).")
def create(
    name: str, campaign_name: str | None, responsible: str | None, website: str | None
) -> None:
    """Create the campaign of template NAME (its key or title) in draft; print its id and name."""
    from nurture.campaign_templates import DEFAULT_WEBSITE, create_from_template
    from nurture.records.models import User

    rt = runtime()
    if rt.settings.is_sqlite:
        rt.db.migrate()
    try:
        with rt.db.transaction() as session:
            responsible_id = None
            if responsible:
                responsible_id = session.scalar(select(User.id).where(User.login == responsible))
                if responsible_id is None:
                    raise click.ClickException(f"no user with login {responsible!r}")
            campaign = create_from_template(
                session=session,
                now=utcnow(),
                key=name,
                name=campaign_name,
                responsible_id=responsible_id,
                website=website or DEFAULT_WEBSITE,
            )
            campaign_id, title = campaign.id, campaign.name
    except NurtureError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        rt.db.dispose()
    click.echo(f"campaign {campaign_id} {title!r} created (draft)")
