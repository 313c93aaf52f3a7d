"""``nurture migrate`` and ``nurture serve``."""

from __future__ import annotations

import click

from nurture.cli.base import cli, runtime


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    rt = runtime()
    rt.db.migrate()
    click.echo("database is up to date")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-demo", is_flag=True, help="Do not load demo data into an empty database.")
def serve(host: str, port: int, no_demo: bool) -> None:
    """Start the web server (embedded mode: migrate, demo data on first start, in-process worker)."""
    import uvicorn

    from nurture.web.app import create_app

    rt = runtime()
    if rt.settings.is_sqlite:
        rt.db.migrate()
    if not no_demo:
        from nurture.records.demo import load_demo_if_empty

        if load_demo_if_empty(rt.db):
            click.echo("demo data loaded")
    app = create_app(rt)
    uvicorn.run(app, host=host, port=port, log_level=rt.settings.log_level.lower())
