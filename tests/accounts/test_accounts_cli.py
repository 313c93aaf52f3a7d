from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nurture.accounts import passwords, tokens, users
from nurture.cli import accounts as cli_accounts
from nurture.cli import cli
from nurture.clock import utcnow
from nurture.db import Database

PASSWORD = "s3cret-passphrase"
Run = Callable[..., Result]


@pytest.fixture
def run(db: Database, tmp_path: Path, fast_hashing: object) -> Run:
    env = {
        "NURTURE_DATABASE_URL": db.url,
        "NURTURE_DATA_DIR": str(tmp_path),
        "NURTURE_SECRET_KEY": "k" * 40,
    }

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, input=input)

    return invoke


def test_user_create_with_password_stdin_and_list(run: Run, db: Database) -> None:
    result = run(
        "user",
        "create",
        "--email",
        "Anna@Example.com",
        "--role",
        "marketer",
        "--name",
        "Anna K",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "created user" in result.stdout and "anna@example.com (marketer)" in result.stdout
    assert PASSWORD not in result.output
    with db.read() as s:
        user = users.get_user_by_login(s, "anna@example.com")
        assert user.name == "Anna K" and user.role == "marketer"
        assert passwords.verify_password(user.password_hash, PASSWORD)
    listing = run("user", "list")
    assert listing.exit_code == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["ID", "LOGIN", "NAME", "ROLE", "ACTIVE", "PASSWORD", "CREATED"]
    assert "anna@example.com" in lines[1] and "marketer" in lines[1] and "yes" in lines[1]


def test_user_create_without_terminal_or_stdin_has_no_password(run: Run, db: Database) -> None:
    result = run("user", "create", "--email", "bot@example.com", "--role", "viewer")
    assert result.exit_code == 0, result.output
    assert "no password set" in result.stderr
    with db.read() as s:
        assert users.get_user_by_login(s, "bot@example.com").password_hash is None


def test_user_create_errors_are_clean(run: Run) -> None:
    weak = run(
        "user",
        "create",
        "--email",
        "a@example.com",
        "--role",
        "admin",
        "--password-stdin",
        input="short\n",
    )
    assert weak.exit_code == 1
    assert "password too short: at least 10 characters" in weak.stderr
    assert "Traceback" not in weak.output
    bad_role = run("user", "create", "--email", "a@example.com", "--role", "owner")
    assert bad_role.exit_code == 2 and "owner" in bad_role.stderr
    assert run("user", "create", "--email", "a@example.com", "--role", "admin").exit_code == 0
    dup = run("user", "create", "--email", "A@example.com", "--role", "admin")
    assert dup.exit_code == 1 and "already exists" in dup.stderr


def test_set_role_set_password_deactivate(run: Run, db: Database) -> None:
    assert run("user", "create", "--email", "root@example.com", "--role", "admin").exit_code == 0
    assert run("user", "create", "--email", "m@example.com", "--role", "marketer").exit_code == 0
    assert run("user", "set-role", "m@example.com", "viewer").exit_code == 0
    last_admin = run("user", "set-role", "root@example.com", "viewer")
    assert last_admin.exit_code == 1 and "last active admin" in last_admin.stderr
    assert (
        run(
            "user", "set-password", "m@example.com", "--password-stdin", input=PASSWORD + "\n"
        ).exit_code
        == 0
    )
    no_tty = run("user", "set-password", "m@example.com")
    assert no_tty.exit_code == 1 and "--password-stdin" in no_tty.stderr
    assert run("user", "deactivate", "m@example.com").exit_code == 0
    with db.read() as s:
        user = users.get_user_by_login(s, "m@example.com")
        assert user.role == "viewer" and not user.active
        assert passwords.verify_password(user.password_hash, PASSWORD)
    assert run("user", "activate", "m@example.com").exit_code == 0
    audit = run("audit")
    assert audit.exit_code == 0
    for action in (
        "user.create",
        "user.role_change",
        "user.password_change",
        "user.deactivate",
        "user.activate",
    ):
        assert action in audit.stdout
    assert "from=marketer, to=viewer" in audit.stdout


def test_token_create_list_revoke(run: Run, db: Database) -> None:
    assert run("user", "create", "--email", "m@example.com", "--role", "marketer").exit_code == 0
    created = run("token", "create", "--user", "M@example.com", "--name", "zapier")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("nrt_") and len(created.stdout.splitlines()) == 1
    assert "will not be shown again" in created.stderr
    with db.transaction() as s:
        user = tokens.verify_token(s, token, now=utcnow())
        assert user is not None and user.login == "m@example.com"
    listing = run("token", "list")
    assert listing.exit_code == 0
    header, row = listing.stdout.splitlines()
    assert "LAST USED" in header
    token_id = row.split()[0]
    assert "m@example.com" in row and "zapier" in row and "active" in row
    assert token not in listing.stdout  # only the prefix is shown
    assert "never" not in row  # it was used above
    revoked = run("token", "revoke", token_id)
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert "revoked" in run("token", "list", "--user", "m@example.com").stdout
    with db.transaction() as s:
        assert tokens.verify_token(s, token, now=utcnow()) is None
    missing = run("token", "revoke", "999")
    assert missing.exit_code == 1 and "no API token with id 999" in missing.stderr
    unknown_user = run("token", "create", "--user", "ghost@example.com")
    assert unknown_user.exit_code == 1 and "no user with login" in unknown_user.stderr


def test_user_create_prompts_for_the_password_on_a_terminal(
    run: Run, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_accounts, "_interactive", lambda: True)
    mismatch = run(
        "user",
        "create",
        "--email",
        "t@example.com",
        "--role",
        "viewer",
        input="first-password\nsecond-password\n",
    )
    assert mismatch.exit_code != 0
    result = run(
        "user",
        "create",
        "--email",
        "t@example.com",
        "--role",
        "viewer",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input
    with db.read() as s:
        assert passwords.verify_password(
            users.get_user_by_login(s, "t@example.com").password_hash, PASSWORD
        )
