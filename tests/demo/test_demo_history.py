"""The demo campaigns: three weeks of history made by the engine, seen through the API.

``nurture demo`` (the entry point also used by the first start of ``nurture serve``) loads
the records and three campaigns, running / stopped / draft; the figures come from the
engine's own traces and are read back through ``GET /api/v1/campaigns/{id}/metrics``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import DateTime, func, select

import nurture.models  # noqa: F401  (every table in Base.metadata)
from nurture.campaigns.models import Campaign
from nurture.channels.email.models import MailMessage
from nurture.cli import cli
from nurture.clock import utcnow
from nurture.db import Database
from nurture.db.base import Base
from nurture.demo import load_history
from nurture.demo.history import DRAFT, RUNNING, STOPPED
from nurture.engine.models import Participant, Trace
from nurture.records import models as m
from nurture.worker.loop import tick
from tests.api.conftest import Api

V1 = "/api/v1"

#: columns that hold planned times, legitimately later than now
PLANNED = {
    ("event", "date_begin"),
    ("event", "date_end"),
    ("crm_activity", "due_date"),
}


@pytest.fixture
def runner(api_db: Database, tmp_path: Path) -> CliRunner:
    return CliRunner(
        env={
            "NURTURE_DATABASE_URL": api_db.url,
            "NURTURE_DATA_DIR": str(tmp_path / "data"),
            "NURTURE_CONFIG_FILE": "",
            "NURTURE_SMTP_URL": "",
        }
    )


def _future_values(db: Database, now: datetime) -> list[str]:
    """Every stored time later than ``now`` but the planned ones (the planned date of the
    traces not executed, event dates, activity due dates, expiries)."""
    found = []
    with db.read() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                kind = column.type
                if not isinstance(kind, DateTime) and not isinstance(getattr(kind, "impl", None), DateTime):
                    continue
                if (table.name, column.name) in PLANNED or column.name.startswith("expires"):
                    continue
                stmt = select(func.count()).select_from(table).where(column > now)
                if (table.name, column.name) == ("trace", "schedule_date"):
                    # a planned time: later for the traces still to run and for those
                    # canceled before it came ("not opened" children of opened emails)
                    stmt = stmt.where(table.c.state.not_in(("scheduled", "canceled")))
                count = session.scalar(stmt)
                if count:
                    found.append(f"{table.name}.{column.name}: {count}")
    return found


def test_demo_loads_three_campaigns_with_engine_history(api: Api, runner: CliRunner) -> None:
    before = utcnow()
    result = runner.invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    now = utcnow()
    client = api.as_role("viewer")

    listed = client.get(f"{V1}/campaigns").json()
    items = listed["items"] if isinstance(listed, dict) else listed
    by_state = {c["state"]: c for c in items}
    assert sorted(by_state) == ["draft", "running", "stopped"]
    assert {by_state[s]["name"] for s in by_state} == {RUNNING, STOPPED, DRAFT}
    for state, campaign in by_state.items():
        assert f"demo campaign {campaign['id']}: {campaign['name']} ({state})" in result.output

    # the running welcome flow: hundreds of participants, realistic reactions
    running = by_state["running"]
    metrics = client.get(f"{V1}/campaigns/{running['id']}/metrics").json()
    people = metrics["participants"]
    assert people["running"] + people["completed"] >= 150
    welcome = next(a for a in metrics["activities"] if a["name"] == "Welcome")
    sent = welcome["sent"]
    assert sent >= 150
    assert 0.3 < welcome["opened"] / sent < 0.6
    assert 0.04 < welcome["clicked"] / sent < 0.2
    assert 0 < welcome["replied"] <= welcome["opened"]
    assert 0 < welcome["bounced"] < 0.08 * sent
    assert welcome["traces"]["processed"] == sent
    assert welcome["traces"]["error"] == welcome["bounced"]  # refused at send time
    children = {a["name"]: a for a in metrics["activities"]}
    # the opened / clicked / not opened / bounced children ran
    assert children["Getting started guides"]["sent"] > 0
    assert children["Tag as Hot"]["traces"]["processed"] > 0
    assert children["Still interested?"]["sent"] > 0
    assert children["Still interested?"]["traces"]["canceled"] > 0  # opened meanwhile
    assert children["Remove bounced address"]["traces"]["processed"] == welcome["bounced"]

    with api.db.read() as s:
        executed = s.scalars(
            select(Trace.executed_at).where(
                Trace.campaign_id == running["id"],
                Trace.state.in_(("processed", "rejected")),
                Trace.executed_at >= now - timedelta(days=15),
            )
        ).all()
        days = {(now - t).days for t in executed if t is not None}
        assert len(days) >= 10, sorted(days)
        first = s.scalar(select(func.min(Trace.executed_at)).where(Trace.campaign_id == running["id"]))
        assert first is not None and now - first > timedelta(days=20)
        # every message went to the outbox and is recorded: nothing left queued
        assert s.scalar(select(func.count()).where(MailMessage.state == "queued")) == 0
        assert s.scalar(select(func.count()).where(MailMessage.state == "sent")) >= 300
        # the bounced addresses were blacklisted by the bounce child
        blacklisted = s.scalar(
            select(func.count()).where(m.EmailBlacklist.reason == "The welcome email bounced")
        )
        assert blacklisted and blacklisted <= welcome["bounced"]

        # the stopped campaign ran a few days, then nothing ran
        stopped = s.get(Campaign, by_state["stopped"]["id"])
        assert stopped is not None and stopped.started_at is not None
        ran = stopped.updated_at - stopped.started_at
        assert timedelta(days=2) < ran < timedelta(days=7)
        last = s.scalar(
            select(func.max(Trace.executed_at)).where(
                Trace.campaign_id == stopped.id, Trace.state == "processed"
            )
        )
        assert last is not None and last <= stopped.updated_at
        assert s.scalar(select(func.count()).where(Participant.campaign_id == stopped.id)) > 50

        # the draft never ran
        draft = s.get(Campaign, by_state["draft"]["id"])
        assert draft is not None and draft.started_at is None and draft.activities
        assert s.scalar(select(func.count()).where(Participant.campaign_id == draft.id)) == 0

    stopped_metrics = client.get(f"{V1}/campaigns/{by_state['stopped']['id']}/metrics").json()
    catalog = next(a for a in stopped_metrics["activities"] if a["name"] == "Free catalog")
    assert catalog["sent"] > 50 and catalog["opened"] > 0 and catalog["clicked"] > 0

    # nothing dated in the future but what is planned
    assert _future_values(api.db, utcnow()) == []
    assert before <= now

    # the worker's first pass afterwards finds no backlog to catch up on
    first_pass = tick(api.db, now=utcnow() + timedelta(minutes=1))
    assert first_pass.enrolled == 0
    assert first_pass.traces.processed + first_pass.traces.rejected <= 10

    # loading again is safe: the history is not made twice, the records are added
    assert load_history(api.db, now=utcnow()) is None
    forced = runner.invoke(cli, ["demo", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "demo campaigns not added" in forced.output
    with api.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 3
        assert s.scalar(select(func.count()).select_from(m.Contact)) == 2000


def test_history_interrupted_leaves_no_running_campaign(api: Api) -> None:
    """A server stopped during its first start: the demo campaigns made so far are stopped,
    so a later start does not catch up on the weeks left out."""
    checks = iter(range(1000))
    history = load_history(api.db, now=utcnow(), should_stop=lambda: next(checks) >= 6)
    assert history is None
    with api.db.read() as s:
        states = s.scalars(select(Campaign.state)).all()
        assert states and "running" not in states
        stop_times = s.scalars(select(Campaign.updated_at)).all()
        assert max(stop_times) < utcnow() - timedelta(days=15)
