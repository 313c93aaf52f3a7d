"""Enrolment of 1,000,000 matching contacts vs a raw INSERT … SELECT of the same rows.

    .venv/bin/python -m bench.enrol [--backend sqlite|postgresql|both] [--rows N]

Nurture's pass (compiled filter, active condition, unicity de-duplication on e-mail with
its window function and anti-joins, participants + begin traces) is timed against a raw
``INSERT … SELECT`` of the same participants and traces into the same tables, in the same
run. Each side runs twice (tables emptied between runs); the best time of each counts.
Target: ratio ≤ 3.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from bench._engine_common import (
    backends,
    clear_engine_rows,
    fmt,
    fresh_database,
    generate_contacts,
    parse_args,
    timed,
)
from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.db import Database
from nurture.engine.enrol import enrol_campaign

NOW = datetime(2026, 1, 5, 9, 0)
DOMAIN = [["email", "!=", False]]


def engine_pass(db: Database, campaign_id: int) -> int:
    with db.transaction() as s:
        return enrol_campaign(s, campaign_id=campaign_id, now=NOW)


RAW_SQL = {
    "postgresql": (
        "INSERT INTO participant (campaign_id, model, res_id, unicity_value, state, is_test, "
        "created_at, updated_at) SELECT :c, 'contact', id, email, 'running', false, "
        "CAST(:now AS timestamp), CAST(:now AS timestamp) "
        "FROM contact WHERE email IS NOT NULL AND email <> '' AND active",
        "INSERT INTO trace (campaign_id, participant_id, activity_id, res_id, is_test, state, "
        "schedule_date, created_at) SELECT :c, id, :a, res_id, false, 'scheduled', "
        "CAST(:now AS timestamp), CAST(:now AS timestamp) FROM participant WHERE campaign_id = :c",
    ),
    "sqlite": (
        "INSERT INTO participant (campaign_id, model, res_id, unicity_value, state, is_test, "
        "created_at, updated_at) SELECT :c, 'contact', id, email, 'running', 0, :now, :now "
        "FROM contact WHERE email IS NOT NULL AND email <> '' AND active",
        "INSERT INTO trace (campaign_id, participant_id, activity_id, res_id, is_test, state, "
        "schedule_date, created_at) SELECT :c, id, :a, res_id, 0, 'scheduled', :now, :now "
        "FROM participant WHERE campaign_id = :c",
    ),
}


def raw_pass(db: Database, campaign_id: int, activity_id: int) -> int:
    now = NOW.isoformat(sep=" ") + (".000000" if db.dialect == "sqlite" else "")
    participants_sql, traces_sql = RAW_SQL[db.dialect]
    with db.engine.begin() as conn:
        conn.execute(text(participants_sql), {"c": campaign_id, "now": now})
        conn.execute(text(traces_sql), {"c": campaign_id, "a": activity_id, "now": now})
        return int(conn.execute(text("SELECT count(*) FROM participant")).scalar() or 0)


def run(backend: str, rows: int) -> float:
    with fresh_database(backend, "enrol") as db:
        print(f"[{backend}] generating {rows:,} contacts …", flush=True)
        generate_contacts(db, rows)
        with db.transaction() as s:
            campaign = cs.create_campaign(session=s, now=NOW, name="Bench", model="contact", domain=DOMAIN)
            action = action_service.create_server_action(
                session=s, now=NOW, name="tag", model="contact", add_tags=["Bench"]
            )
            activity = activity_service.add_activity(
                session=s, now=NOW, campaign_id=campaign.id, name="Tag",
                activity_type="action", server_action_id=action.id,
            )
            cs.start_campaign(session=s, now=NOW, campaign_id=campaign.id)
            cid, aid = campaign.id, activity.id
        # Starting enrols at once; each timed pass below starts from no participants.
        clear_engine_rows(db)
        raw_times, engine_times = [], []
        for _ in range(2):
            t, n = timed(lambda: raw_pass(db, cid, aid))
            assert n == rows, n
            raw_times.append(t)
            clear_engine_rows(db)
            t, n = timed(lambda: engine_pass(db, cid))
            assert n == rows, n
            engine_times.append(t)
            with db.engine.connect() as conn:
                traces = conn.execute(text("SELECT count(*) FROM trace")).scalar()
            assert traces == rows, traces
            clear_engine_rows(db)
        raw, engine = min(raw_times), min(engine_times)
        ratio = engine / raw
        print(
            f"[{backend}] enrol {rows:,} contacts: nurture {fmt(engine)}  raw INSERT…SELECT {fmt(raw)}  "
            f"ratio {ratio:.2f} (target ≤ 3) {'OK' if ratio <= 3 else 'OVER'}",
            flush=True,
        )
        return ratio


def main() -> None:
    args = parse_args("Enrolment benchmark", 1_000_000)
    for backend in backends(args.backend):
        run(backend, args.rows)


if __name__ == "__main__":
    main()
