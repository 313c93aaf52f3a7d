"""Account commands: ``nurture user …``, ``nurture token …`` and ``nurture audit``.

The account services are imported inside each command, like the server imports the web app:
loading the ``nurture`` command stays cheap and does not pull in the account tables.
"""

from __future__ import annotations

import sys
from datetime import datetime

import click

from nurture import clock
from nurture.accounts.permissions import ROLES
from nurture.cli.base import cli, runtime
from nurture.errors import NurtureError


def _fail(exc: NurtureError) -> click.ClickException:
    return click.ClickException(exc.message)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "never"


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _interactive() -> bool:
    return sys.stdin.isatty()


def _read_password(password_stdin: bool, *, required: bool) -> str | None:
    """The new password from stdin (first line), a hidden prompt, or None."""
    if password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.ClickException("--password-stdin: no password on standard input")
        return line
    if _interactive():
        value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return value
    if required:
        raise click.ClickException("no terminal to ask for the password: use --password-stdin")
    return None


@cli.group()
def user() -> None:
    """Manage users (admin, marketer, viewer)."""


@user.command("create")
@click.option("--email", "login", required=True, help="Email address, used as the login.")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", default=None, help="Display name (default: the part before @).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (else prompt when interactive).",
)
def user_create(login: str, role: str, name: str | None, password_stdin: bool) -> None:
    """Create a user. Without a terminal and without --password-stdin the user gets no
    password (API tokens only, until `nurture user set-password`)."""
    from nurture.accounts import users

    password = _read_password(password_stdin, required=False)
    rt = runtime()
    try:
        with rt.db.transaction() as s:
            created = users.create_user(
                s, login=login, role=role, name=name, password=password, now=clock.utcnow()
            )
            summary = f"created user {created.id}: {created.login} ({created.role})"
    except NurtureError as exc:
        raise _fail(exc) from exc
    click.echo(summary)
    if password is None:
        click.echo(
            "no password set: this user can use API tokens but not sign in to the UI "
            "until `nurture user set-password`",
            err=True,
        )


@user.command("list")
def user_list() -> None:
    """List users."""
    from nurture.accounts import users

    rt = runtime()
    with rt.db.read() as s:
        rows = [
            [
                str(u.id),
                u.login,
                u.name,
                u.role,
                "yes" if u.active else "no",
                "yes" if u.password_hash else "no",
                _when(u.created_at),
            ]
            for u in users.list_users(s)
        ]
    _table(["ID", "LOGIN", "NAME", "ROLE", "ACTIVE", "PASSWORD", "CREATED"], rows)


@user.command("set-password")
@click.argument("login")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_set_password(login: str, password_stdin: bool) -> None:
    """Set a user's password (signs out their browsers)."""
    from nurture.accounts import users

    password = _read_password(password_stdin, required=True)
    assert password is not None
    rt = runtime()
    try:
        with rt.db.transaction() as s:
            target = users.get_user_by_login(s, login)
            users.set_password(s, target, password, now=clock.utcnow())
    except NurtureError as exc:
        raise _fail(exc) from exc
    click.echo(f"password changed for {login}")


@user.command("set-role")
@click.argument("login")
@click.argument("role", type=click.Choice(ROLES))
def user_set_role(login: str, role: str) -> None:
    """Change a user's role."""
    from nurture.accounts import users

    rt = runtime()
    try:
        with rt.db.transaction() as s:
            target = users.get_user_by_login(s, login)
            users.change_role(s, target, role, now=clock.utcnow())
    except NurtureError as exc:
        raise _fail(exc) from exc
    click.echo(f"{login} is now {role}")


@user.command("deactivate")
@click.argument("login")
def user_deactivate(login: str) -> None:
    """Deactivate a user: no sign-in, sessions ended, API tokens refused."""
    from nurture.accounts import users

    rt = runtime()
    try:
        with rt.db.transaction() as s:
            users.deactivate(s, users.get_user_by_login(s, login), now=clock.utcnow())
    except NurtureError as exc:
        raise _fail(exc) from exc
    click.echo(f"{login} deactivated")


@user.command("activate")
@click.argument("login")
def user_activate(login: str) -> None:
    """Reactivate a deactivated user."""
    from nurture.accounts import users

    rt = runtime()
    try:
        with rt.db.transaction() as s:
            users.activate(s, users.get_user_by_login(s, login), now=clock.utcnow())
    except NurtureError as exc:
        raise _fail(exc) from exc
    click.echo(f"{login} activated")


@cli.group()
def token() -> None:
    """Manage API tokens (Authorization: Bearer <token>)."""


@token.command("create")
@click.option("--user", "login", required=True, help="Login (email) of the token's owner.")
@click.option("--name", default="API token", show_default=True, help="What the token is for.")
def token_create(login: str, name: str) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from nurture.accounts import tokens, users

    rt = runtime()
    try:
        with rt.db.transaction() as s:
            owner = users.get_user_by_login(s, login)
            secret, row = tokens.create_token(s, owner, name, now=clock.utcnow())
            token_id = row.id
    except NurtureError as exc:
        raise _fail(exc) from exc
    click.echo(secret)
    click.echo(f"token {token_id} for {login}: copy it now, it will not be shown again", err=True)


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke an API token (see `nurture token list` for ids)."""
    from nurture.accounts import tokens

    rt = runtime()
    try:
        with rt.db.transaction() as s:
            row = tokens.revoke_token(s, token_id, now=clock.utcnow())
            prefix = row.prefix
    except NurtureError as exc:
        raise _fail(exc) from exc
    click.echo(f"token {token_id} ({prefix}…) revoked")


@token.command("list")
@click.option("--user", "login", default=None, help="Only this user's tokens.")
def token_list(login: str | None) -> None:
    """List API tokens with their last-used time."""
    from nurture.accounts import tokens, users

    rt = runtime()
    try:
        with rt.db.read() as s:
            user_id = users.get_user_by_login(s, login).id if login else None
            logins = {u.id: u.login for u in users.list_users(s)}
            rows = [
                [
                    str(t.id),
                    logins.get(t.user_id, "?"),
                    t.name,
                    f"{t.prefix}…",
                    _when(t.created_at),
                    _when(t.last_used_at),
                    "active" if t.revoked_at is None else f"revoked {_when(t.revoked_at)}",
                ]
                for t in tokens.list_tokens(s, user_id=user_id)
            ]
    except NurtureError as exc:
        raise _fail(exc) from exc
    _table(["ID", "USER", "NAME", "PREFIX", "CREATED", "LAST USED", "STATUS"], rows)


@cli.command("audit")
@click.option("--action", default=None, help="e.g. campaign.start, or campaign.* for all.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
def audit_list(action: str | None, limit: int) -> None:
    """Show the audit log, newest first."""
    from nurture.accounts import audit

    rt = runtime()
    with rt.db.read() as s:
        page = audit.list_audit(s, action=action, limit=limit)
        rows = [
            [
                _when(e.at),
                e.actor,
                e.action,
                f"{e.object_type or ''}{'/' + e.object_id if e.object_id else ''}",
                ", ".join(f"{k}={v}" for k, v in (e.details or {}).items()),
            ]
            for e in page.entries
        ]
    _table(["AT", "WHO", "ACTION", "OBJECT", "DETAILS"], rows)
