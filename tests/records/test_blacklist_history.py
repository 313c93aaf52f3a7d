"""Blacklist history and bulk import (service, CLI and API)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from nurture.cli import cli
from nurture.db import Database
from nurture.errors import ValidationError
from nurture.records import blacklists
from nurture.records import models as m

NOW = datetime(2026, 3, 1, 9, 0)


def test_history_keeps_every_block_and_unblock_with_reason_and_source(db: Database) -> None:
    with db.transaction() as s:
        blacklists.blacklist_email(session=s, email="Ann@Example.com", now=NOW, reason="asked")
        blacklists.blacklist_email(session=s, email="ann@example.com", now=NOW, reason="again")
        blacklists.unblacklist_email(session=s, email="ann@example.com", now=NOW + timedelta(days=1))
        blacklists.blacklist_email(
            session=s, email="ann@example.com", now=NOW + timedelta(days=2), reason="bounced", source="bounce"
        )
    with db.read() as s:
        rows = blacklists.blacklist_history(session=s, kind="email", value="ANN@example.com")
        assert [(r.action, r.reason, r.source) for r in rows] == [
            ("add", "asked", "manual"),
            ("remove", None, "manual"),
            ("add", "bounced", "bounce"),
        ]
        assert blacklists.is_email_blacklisted(session=s, email="ann@example.com")


def test_phone_history_uses_e164(db: Database) -> None:
    with db.transaction() as s:
        blacklists.blacklist_phone(session=s, number="0470 12 34 56", country_code="BE", now=NOW)
    with db.read() as s:
        (row,) = blacklists.blacklist_history(session=s, kind="phone", value="+32470123456")
        assert row.value == "+32470123456"


def test_import_blocks_good_lines_reports_bad_ones_and_counts_known(db: Database) -> None:
    with db.transaction() as s:
        blacklists.blacklist_email(session=s, email="known@example.com", now=NOW)
    lines = list(
        blacklists.blacklist_file_values(
            ["email\n", "a@example.com\n", "not-an-email\n", "\n", "known@example.com\n", "A@example.com\n", "b@example.org\n"]
        )
    )
    with db.transaction() as s:
        result = blacklists.import_blacklist(session=s, kind="email", lines=lines, now=NOW, reason="list", chunk_size=2)
    assert result.added == 2
    assert result.already == 2  # known@ and the repeated a@
    assert [line for line, _ in result.errors] == [3]
    assert "not-an-email" in result.errors[0][1]
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(m.EmailBlacklist)) == 3
        (row,) = blacklists.blacklist_history(session=s, kind="email", value="b@example.org")
        assert (row.source, row.reason) == ("import", "list")


def test_history_of_an_invalid_value_is_refused(db: Database) -> None:
    with db.read() as s, pytest.raises(ValidationError):
        blacklists.blacklist_history(session=s, kind="email", value="nope")


def test_cli_import_and_history(db: Database, tmp_path: Path) -> None:
    src = tmp_path / "block.txt"
    src.write_text("x@example.com\nbroken@\ny@example.com\n")
    env = {"NURTURE_DATABASE_URL": db.url, "NURTURE_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    result = runner.invoke(cli, ["blacklist", "import", "email", str(src), "--reason", "legal"], env=env)
    assert result.exit_code == 1  # one line refused
    assert "2 blocked, 0 already blocked, 1 refused" in result.output
    assert "line 2" in result.output
    result = runner.invoke(cli, ["blacklist", "history", "email", "x@example.com"], env=env)
    assert result.exit_code == 0
    assert "add" in result.output and "import" in result.output and "legal" in result.output
