"""``nurture templates`` lists the templates; ``nurture templates create NAME`` creates one."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from nurture.campaigns.models import Campaign
from nurture.cli import cli
from nurture.db import Database
from nurture.records import service as records
from tests.channels.email.integration.conftest import T0


def _env(db: Database, tmp_path: Path) -> dict[str, str]:
    return {
        "NURTURE_DATA_DIR": str(tmp_path),
        "NURTURE_DATABASE_URL": db.url,
        "NURTURE_SECRET_KEY": "cli-test-secret-key-0123456789",
    }


def test_templates_lists_the_six(db: Database, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["templates"], env=_env(db, tmp_path))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 6
    assert lines[2].split()[:3] == ["double_opt_in", "Double", "Opt-in"]
    assert "[mailing_contact] Send an email to new recipients to confirm their consent." in lines[2]


def test_templates_create(db: Database, tmp_path: Path) -> None:
    with db.transaction() as s:
        ann = records.create_record(
            session=s, model="user", values={"login": "ann@acme.test", "name": "Ann"}, now=T0
        )
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["templates", "create", "Schedule Calls", "--responsible", "ann@acme.test"],
        env=_env(db, tmp_path),
    )
    assert result.exit_code == 0, result.output
    with db.read() as s:
        campaign = s.scalars(select(Campaign)).one()
        assert (campaign.name, campaign.model, campaign.state, campaign.responsible_id) == (
            "Schedule Calls",
            "lead",
            "draft",
            ann,
        )
        assert result.output.strip() == f"campaign {campaign.id} 'Schedule Calls' created (draft)"
        assert [a.name for a in campaign.activities] == ["Schedule a call"]

    named = runner.invoke(
        cli,
        ["templates", "create", "welcome_flow", "--name", "Hello subscribers"],
        env=_env(db, tmp_path),
    )
    assert named.exit_code == 0 and "'Hello subscribers' created" in named.output

    unknown = runner.invoke(cli, ["templates", "create", "Black Friday"], env=_env(db, tmp_path))
    assert unknown.exit_code == 1
    assert "unknown campaign template 'Black Friday'" in unknown.output
    nobody = runner.invoke(
        cli,
        ["templates", "create", "welcome_flow", "--responsible", "x@y.z"],
        env=_env(db, tmp_path),
    )
    assert nobody.exit_code == 1 and "no user with login 'x@y.z'" in nobody.output
    with db.read() as s:
        assert len(s.scalars(select(Campaign)).all()) == 2
