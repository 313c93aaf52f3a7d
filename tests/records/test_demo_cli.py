"""Demo data and the record commands (demo, import, export) through the CLI."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import phonenumbers
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from nurture.cli import cli
from nurture.db import Database
from nurture.records import models as m
from nurture.records.demo import load_demo, load_demo_if_empty

from .helpers import NOW


@pytest.fixture
def runner(db: Database, tmp_path: Path) -> Iterator[CliRunner]:
    env = {
        "NURTURE_DATABASE_URL": db.url,
        "NURTURE_DATA_DIR": str(tmp_path / "data"),
        "NURTURE_CONFIG_FILE": "",
    }
    yield CliRunner(env=env)


def test_demo_dataset_is_realistic(db: Database) -> None:
    counts = load_demo(db, NOW)
    assert counts["contact"] == 1000 and counts["lead"] == 200
    with db.read() as s:
        roles = Counter(s.scalars(select(m.User.role)))
        assert roles["admin"] >= 1 and roles["marketer"] >= 1 and roles["viewer"] >= 1
        admin = s.scalar(select(m.User).where(m.User.login == "admin@example.com"))
        assert admin is not None and admin.role == "admin" and admin.password_hash is None
        countries = Counter(s.scalars(select(m.Contact.country_code)))
        assert len(countries) >= 10
        for phone, country in s.execute(select(m.Contact.phone, m.Contact.country_code)):
            number = phonenumbers.parse(phone, None)
            assert phonenumbers.is_valid_number(number)
            assert phonenumbers.region_code_for_number(number) == country
        tagged = s.scalar(select(func.count(func.distinct(m.contact_tag.c.contact_id))))
        assert tagged and tagged > 300
        assert set(s.scalars(select(m.Lead.stage))) == {
            "New",
            "Qualified",
            "Proposition",
            "Won",
            "Lost",
        }
        assert s.scalar(select(func.count()).where(m.Lead.contact_id.is_not(None)))
        news = s.scalar(select(m.MailingList).where(m.MailingList.name == "Newsletter"))
        assert news is not None
        subs = Counter(
            s.scalars(
                select(m.MailingSubscription.opted_out).where(
                    m.MailingSubscription.list_id == news.id
                )
            )
        )
        assert subs[False] + subs[True] == 300 and 0 < subs[True] < 100
        assert s.scalar(select(func.count()).select_from(m.EventRegistration)) == 80
        with_salesperson = s.scalar(
            select(func.count()).where(m.Contact.salesperson_id.is_not(None))
        )
        assert with_salesperson and with_salesperson > 300


def test_demo_is_deterministic(db: Database) -> None:
    load_demo(db, NOW)
    with db.read() as s:
        first = list(
            s.execute(
                select(m.Contact.name, m.Contact.email, m.Contact.phone).order_by(m.Contact.id)
            )
        )
    db.wipe()
    load_demo(db, NOW)
    with db.read() as s:
        second = list(
            s.execute(
                select(m.Contact.name, m.Contact.email, m.Contact.phone).order_by(m.Contact.id)
            )
        )
    assert first == second


def test_demo_loads_only_into_an_empty_database(db: Database) -> None:
    assert load_demo_if_empty(db, NOW) is True
    assert load_demo_if_empty(db, NOW) is False
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(m.Contact)) == 1000


def test_demo_command_refuses_existing_data_unless_forced(runner: CliRunner, db: Database) -> None:
    first = runner.invoke(cli, ["demo"])
    assert first.exit_code == 0, first.output
    assert "1000 contact" in first.output
    again = runner.invoke(cli, ["demo"])
    assert again.exit_code != 0 and "--force" in again.output
    forced = runner.invoke(cli, ["demo", "--force"])
    assert forced.exit_code == 0, forced.output
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(m.Contact)) == 2000
        assert s.scalar(select(func.count()).select_from(m.User)) == 6


def test_import_and_export_commands(runner: CliRunner, db: Database, tmp_path: Path) -> None:
    source = tmp_path / "contacts.csv"
    source.write_text(
        "Name,Email,Country\nAnn,ann@example.com,FR\nBad,bad@,FR\nBob,bob@example.com,DE\n",
        encoding="utf-8",
    )
    errors = tmp_path / "errors.csv"
    result = runner.invoke(
        cli, ["import", "contact", str(source), "--errors", str(errors), "--no-progress"]
    )
    assert result.exit_code == 1
    assert "line 3: email" in result.output
    assert "2 created, 0 updated, 1 rejected" in result.output
    assert errors.read_text(encoding="utf-8").splitlines()[1].startswith("3,email,")

    out = tmp_path / "fr.csv"
    result = runner.invoke(
        cli, ["export", "contact", "--filter", '[["country_code", "=", "FR"]]', "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["email"] for r in rows] == ["ann@example.com"]

    result = runner.invoke(cli, ["export", "contact"])
    assert result.exit_code == 0
    assert "bob@example.com" in result.output


def test_command_errors_exit_non_zero_with_a_message(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("name,planet\nAnn,Mars\n", encoding="utf-8")
    result = runner.invoke(cli, ["import", "contact", str(source), "--no-progress"])
    assert result.exit_code == 0  # the known columns are imported, the unknown one reported
    assert "unknown columns, not imported: planet" in result.output
    assert "1 created" in result.output
    result = runner.invoke(cli, ["import", "spaceship", str(source)])
    assert result.exit_code == 1 and "unknown model" in result.output
    result = runner.invoke(cli, ["export", "contact", "--filter", '[["planet", "=", "Mars"]]'])
    assert result.exit_code == 1 and "planet" in result.output
    result = runner.invoke(cli, ["import", "contact", str(tmp_path / "none.csv")])
    assert result.exit_code == 1 and "no such file" in result.output


def test_demo_loads_next_to_an_existing_administrator(db: Database) -> None:
    from nurture.records import service as svc

    with db.transaction() as s:
        svc.create_record(
            session=s, model="user",
            values={"login": "admin@example.com", "name": "Boss", "role": "admin"}, now=NOW,
        )  # fmt: skip
    assert load_demo_if_empty(db, NOW) is True
    with db.read() as s:
        assert s.scalar(select(func.count()).where(m.User.login == "admin@example.com")) == 1
        assert s.scalar(select(func.count()).select_from(m.User)) == 6
