"""Record commands: demo data, CSV import/export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import click

from nurture.cli.base import cli, runtime
from nurture.clock import utcnow
from nurture.errors import NurtureError

MAX_ERRORS_SHOWN = 20


def _fail(exc: NurtureError) -> click.ClickException:
    return click.ClickException(exc.message)


@cli.command()
@click.option("--force", is_flag=True, help="Load the demo data even though records exist.")
def demo(force: bool) -> None:
    """Load the demo dataset (users, contacts, leads, a newsletter, an event) and three
    campaigns with three weeks of history (running, stopped, draft)."""
    from nurture.demo import load_demo_data
    from nurture.records.demo import database_is_empty

    rt = runtime()
    if rt.settings.is_sqlite:
        rt.db.migrate()
    if not force and not database_is_empty(rt.db):
        raise click.ClickException(
            "the database already holds records; use --force to add the demo data anyway"
        )
    counts, history = load_demo_data(rt.db, utcnow())
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    click.echo(f"demo data loaded: {summary}")
    if history is None:
        click.echo("demo campaigns not added: the database already holds campaigns")
    else:
        for state, campaign_id in history.campaigns.items():
            click.echo(f"demo campaign {campaign_id}: {history.names[state]} ({state})")


def _parse_mapping(items: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"expected COLUMN=FIELD, got {item!r}", param_hint="--map")
        column, _, field = item.partition("=")
        mapping[column.strip()] = field.strip()
    return mapping


@cli.command("import")
@click.argument("model")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="Map a CSV column to a field (repeatable); COLUMN= skips the column.",
)
@click.option(
    "--upsert-by", metavar="FIELD", help="Update the record with the same value (e.g. email)."
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the rejected rows, with line and reason, to this CSV file.",
)
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--delimiter", help="Field separator (default: guessed from the header).")
@click.option("--list", "list_name", help="mailing_contact: subscribe every row to this list.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
def import_command(
    model: str,
    file: Path,
    mappings: tuple[str, ...],
    upsert_by: str | None,
    errors_path: Path | None,
    batch_size: int,
    delimiter: str | None,
    list_name: str | None,
    no_progress: bool,
) -> None:
    """Import records of MODEL (contact, lead, mailing_contact, event_registration) from FILE.

    Headers match field names or labels (case-insensitive). Valid rows are imported; rows
    with errors are reported with their line number and the command exits with status 1.
    """
    from nurture.records.csv_import import import_csv

    rt = runtime()
    mapping = _parse_mapping(mappings)
    errors_file: IO[str] | None = None
    try:
        if errors_path is not None:
            errors_file = errors_path.open("w", encoding="utf-8", newline="")
        result = import_csv(
            db=rt.db,
            model=model,
            source=file,
            now=utcnow(),
            mapping=mapping,
            upsert_by=upsert_by,
            batch_size=batch_size,
            errors_to=errors_file,
            progress=not no_progress,
            delimiter=delimiter,
            subscribe_list=list_name,
        )
    except NurtureError as exc:
        raise _fail(exc) from None
    finally:
        if errors_file is not None:
            errors_file.close()
    for error in result.errors[:MAX_ERRORS_SHOWN]:
        click.echo(f"line {error.line}: {error.message}", err=True)
    if result.error_count > MAX_ERRORS_SHOWN:
        click.echo(f"… and {result.error_count - MAX_ERRORS_SHOWN} more rejected rows", err=True)
    if result.unknown_columns:
        click.echo(
            f"unknown columns, not imported: {', '.join(result.unknown_columns)} "
            "(map one to a field with --map 'COLUMN=FIELD')",
            err=True,
        )
    if result.ignored_columns:
        click.echo(f"ignored columns: {', '.join(result.ignored_columns)}", err=True)
    click.echo(
        f"{model}: {result.created} created, {result.updated} updated, "
        f"{result.error_count} rejected"
        + (f" (see {errors_path})" if errors_path is not None and result.error_count else "")
    )
    if result.error_count:
        sys.exit(1)


@cli.command("export")
@click.argument("model")
@click.option("--filter", "domain", metavar="DOMAIN", help="Only records matching this domain.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (default: standard output).",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Write cells verbatim (no leading ' on cells a spreadsheet would run as formulas).",
)
def export_command(model: str, domain: str | None, output: Path | None, raw: bool) -> None:
    """Export records of MODEL as CSV (field names as headers; re-importable)."""
    from nurture.audience.export import export_csv

    rt = runtime()
    try:
        with rt.db.read() as session:
            if output is None:
                count = export_csv(
                    session=session, model=model, out=sys.stdout, now=utcnow(), domain=domain,
                    raw=raw,
                )
            else:
                with output.open("w", encoding="utf-8", newline="") as out:
                    count = export_csv(
                        session=session, model=model, out=out, now=utcnow(), domain=domain,
                        raw=raw,
                    )
    except NurtureError as exc:
        raise _fail(exc) from None
    click.echo(f"{count} {model} records exported", err=True)


@cli.group()
def blacklist() -> None:
    """Email and phone blacklists."""


@blacklist.command("import")
@click.argument("kind", type=click.Choice(["email", "phone"]))
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--reason", default=None, help="Why these are blocked (kept in the history).")
@click.option("--country", "country_code", default=None, help="Country of numbers without +prefix.")
def blacklist_import(kind: str, file: IO[str], reason: str | None, country_code: str | None) -> None:
    """Block every address or number of FILE (one per line, or a CSV's first column)."""
    from nurture.records.blacklists import blacklist_file_values, import_blacklist

    rt = runtime()
    try:
        with rt.db.transaction() as session:
            result = import_blacklist(
                session=session,
                kind="email" if kind == "email" else "phone",
                lines=blacklist_file_values(file),
                now=utcnow(),
                reason=reason,
                country_code=country_code,
            )
    except NurtureError as exc:
        raise _fail(exc) from exc
    for line, message in result.errors[:MAX_ERRORS_SHOWN]:
        click.echo(f"line {line}: {message}", err=True)
    if len(result.errors) > MAX_ERRORS_SHOWN:
        click.echo(f"… and {len(result.errors) - MAX_ERRORS_SHOWN} more refused lines", err=True)
    click.echo(
        f"{result.added} blocked, {result.already} already blocked, {len(result.errors)} refused"
    )
    if result.errors:
        sys.exit(1)


@blacklist.command("history")
@click.argument("kind", type=click.Choice(["email", "phone"]))
@click.argument("value")
@click.option("--country", "country_code", default=None)
def blacklist_history_command(kind: str, value: str, country_code: str | None) -> None:
    """Every block and unblock of one address or number."""
    from nurture.records.blacklists import blacklist_history

    rt = runtime()
    try:
        with rt.db.read() as session:
            rows = blacklist_history(
                session=session,
                kind="email" if kind == "email" else "phone",
                value=value,
                country_code=country_code,
            )
            lines = [
                f"{r.created_at:%Y-%m-%d %H:%M} {r.action:6} {r.source:11} {r.reason or ''}"
                for r in rows
            ]
    except NurtureError as exc:
        raise _fail(exc) from exc
    click.echo("\n".join(lines) if lines else "never blocked")
