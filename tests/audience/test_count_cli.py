"""``nurture count MODEL 'DOMAIN'`` prints the match count; a bad filter exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nurture.cli import cli

from .conftest import People


@pytest.fixture
def env(people: People, tmp_path: Path) -> dict[str, str]:
    return {
        "NURTURE_DATABASE_URL": people.db.url,
        "NURTURE_DATA_DIR": str(tmp_path),
        "NURTURE_SECRET_KEY": "x" * 40,
    }


@pytest.mark.parametrize(
    ("args", "output"),
    [
        (["contact"], "5"),
        (["contact", "--include-archived"], "6"),
        (["contact", '[["tags.name", "=", "VIP"]]'], "2"),
        (["contact", "[('email', 'ilike', 'gmail'), ('country_code', '=', 'FR')]"], "2"),
        (["contact", "[('salesperson.name', '!=', 'Bob')]", "--include-archived"], "4"),
    ],
)
def test_count_prints_the_number_of_matching_records(
    env: dict[str, str], args: list[str], output: str
) -> None:
    result = CliRunner().invoke(cli, ["count", *args], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["contact", '[["emial", "=", "x"]]'], "unknown field 'emial' on contact"),
        (["contact", '[["email", "~", "x"]]'], "email: unknown operator '~'"),
        (["contact", '[["created_at", ">", "soon"]]'], "'soon' is not a date and time"),
        (["contact", "[('email', '='"], "neither JSON nor a Python literal"),
        (["contacts", "[]"], "unknown model 'contacts'"),
    ],
)
def test_a_bad_filter_prints_the_reason_and_exits_2(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["count", *args], env=env)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
