"""SMS commands: ``nurture sms-template set|show CAMPAIGN ACTIVITY``."""

from __future__ import annotations

import sys
from typing import IO

import click

from nurture.cli.base import cli, runtime
from nurture.clock import utcnow
from nurture.errors import NurtureError


@cli.group("sms-template")
def sms_template() -> None:
    """The text of an SMS activity (as ``PUT/GET …/activities/{id}/sms-template``)."""


@sms_template.command("set")
@click.argument("campaign_id", type=int)
@click.argument("activity_id", type=int)
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--opt-out", is_flag=True, help="Append the opt-out text (NURTURE_SMS_OPT_OUT_TEXT).")
@click.option("--name", default=None, help="Template name (default: the activity's name).")
def set_template(
    campaign_id: int, activity_id: int, file: IO[str], opt_out: bool, name: str | None
) -> None:
    """Set the SMS text of ACTIVITY_ID in CAMPAIGN_ID from FILE ('-': standard input).

    The text is checked before it is saved; a problem is reported with its line and column
    and nothing is written (exit 1). Prints the template id and the segment count.
    """
    from nurture.channels.sms import service as sms
    from nurture.channels.sms.segments import count_segments

    body = file.read().rstrip("\n")
    rt = runtime()
    try:
        with rt.db.transaction() as session:
            template = sms.set_activity_template(
                session=session,
                now=utcnow(),
                campaign_id=campaign_id,
                activity_id=activity_id,
                body=body,
                name=name,
                opt_out=opt_out,
            )
            template_id = template.id
    except NurtureError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        rt.db.dispose()
    info = count_segments(body)
    click.echo(
        f"SMS template {template_id} saved for activity {activity_id}: "
        f"{info.segments} segment(s), {info.encoding}, {info.length} characters"
    )


@sms_template.command("show")
@click.argument("campaign_id", type=int)
@click.argument("activity_id", type=int)
def show_template(campaign_id: int, activity_id: int) -> None:
    """Print the SMS text of ACTIVITY_ID in CAMPAIGN_ID (exit 1 when it has none)."""
    from nurture.campaigns.models import Activity
    from nurture.channels.sms import service as sms

    rt = runtime()
    try:
        with rt.db.read() as session:
            activity = session.get(Activity, activity_id)
            template = sms.template_for_activity(session=session, activity_id=activity_id)
            if activity is None or activity.campaign_id != campaign_id:
                raise click.ClickException(
                    f"activity {activity_id} does not exist in campaign {campaign_id}"
                )
            if template is None:
                raise click.ClickException(f"activity {activity_id} has no SMS template")
            body = template.body
    finally:
        rt.db.dispose()
    sys.stdout.write(body + "\n")
