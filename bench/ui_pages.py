"""Server time of the UI's busiest pages vs the bare SQL those pages run.

    .venv/bin/python -m bench.ui_pages [--backend sqlite|postgresql|both]
        [--contacts 1000000] [--campaigns 100] [--traces 5000000] [--requests 30]

Data: ``--contacts`` contacts, ``--campaigns`` running campaigns (one with a 12-activity
workflow, the others with three activities), participants spread over the campaigns and
``--traces`` traces dated over the last 15 days (so sparklines and daily bars have data).

Each page is requested ``--requests`` times in-process (the ASGI app through its test
client, signed in as a marketer: the whole server path, no network) and its p95 is
compared with the p95 of the same SQL statements, with the same parameters, executed bare
on a driver connection (captured from one request of the page). The ratio therefore
measures what the server adds around the queries it needs: rendering, ORM, dependencies.
Target: ratio ≤ 2 for each page.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, select, text

from bench._engine_common import analyse, backends, fresh_database, generate_contacts
from nurture.accounts import users
from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.campaigns.models import Activity
from nurture.clock import utcnow
from nurture.config import Settings
from nurture.db import Database
from nurture.runtime import Runtime
from nurture.web.app import create_app

TARGET = 2.0
PASSWORD = "bench password 1234"


def build_data(db: Database, contacts: int, campaigns: int, traces: int) -> dict[str, Any]:
    now = utcnow()
    generate_contacts(db, contacts)
    big_id = 0
    with db.transaction() as s:
        users.create_user(
            s, login="marketer@example.com", role="marketer", password=PASSWORD, now=now
        )
        action = action_service.create_server_action(
            session=s, now=now, name="Tag", model="contact", add_tags=["Bench"]
        )
        for i in range(campaigns):
            campaign = cs.create_campaign(
                session=s, now=now, name=f"Campaign {i:03d}", model="contact",
                domain=[["country_code", "=", "FR" if i % 2 else "BE"]],
            )
            parent = None
            for k in range(12 if i == 0 else 3):
                activity = activity_service.add_activity(
                    session=s, now=now, campaign_id=campaign.id, name=f"Step {k + 1}",
                    activity_type="action", server_action_id=action.id,
                    trigger_type="begin" if parent is None else "activity",
                    parent_id=parent, interval_number=1, interval_unit="days",
                )
                parent = activity.id if k % 3 == 0 else parent
            if i == 0:
                big_id = campaign.id
    _fill_traces(db, campaigns, traces, now)
    with db.engine.begin() as conn:  # running, without the enrolment a start would do
        conn.execute(text("UPDATE campaign SET state = 'running'"))
    analyse(db)
    return {"big_campaign": big_id}


def _fill_traces(db: Database, campaigns: int, traces: int, now: datetime) -> None:
    """Participants (one per contact and campaign slot) and traces over the last 15 days."""
    with db.read() as s:
        activities = s.execute(select(Activity.id, Activity.campaign_id).order_by(Activity.id)).all()
    per_campaign: dict[int, list[int]] = {}
    for aid, cid in activities:
        per_campaign.setdefault(cid, []).append(aid)
    campaign_ids = sorted(per_campaign)
    start = (now - timedelta(days=15)).replace(microsecond=0)
    fmt_now = start.isoformat(sep=" ") + (".000000" if db.dialect == "sqlite" else "")
    falsy = "false" if db.dialect == "postgresql" else "0"
    ts = "CAST(:t AS timestamp)" if db.dialect == "postgresql" else ":t"
    with db.engine.begin() as conn:
        for idx, cid in enumerate(campaign_ids):
            conn.execute(
                text(
                    "INSERT INTO participant (campaign_id, model, res_id, unicity_value, state, "  # noqa: S608 (constants only)
                    f"is_test, created_at, updated_at) SELECT :c, 'contact', id, email, 'running', "
                    f"{falsy}, {ts}, {ts} FROM contact WHERE id % :n = :k"
                ),
                {"c": cid, "n": len(campaign_ids), "k": idx, "t": fmt_now},
            )
        total_participants = int(conn.execute(text("SELECT count(*) FROM participant")).scalar() or 1)
        per_participant = max(1, traces // total_participants)
        for cid in campaign_ids:
            for aid in per_campaign[cid][:per_participant]:
                executed = (
                    "CAST(:t AS timestamp) + (id % 15) * INTERVAL '1 day'"
                    if db.dialect == "postgresql"
                    else "strftime('%Y-%m-%d %H:%M:%f000', :t, '+' || (id % 15) || ' days')"
                )
                state = "CASE WHEN id % 10 = 0 THEN 'rejected' ELSE 'processed' END"
                conn.execute(
                    text(
                        "INSERT INTO trace (campaign_id, participant_id, activity_id, res_id, "  # noqa: S608 (constants only)
                        "is_test, state, schedule_date, executed_at, created_at) "
                        f"SELECT :c, id, :a, res_id, {falsy}, {state}, {executed}, {executed}, "
                        f"{ts} FROM participant WHERE campaign_id = :c"
                    ),
                    {"c": cid, "a": aid, "t": fmt_now},
                )


def _login(client: TestClient) -> None:
    page = client.get("/login").text
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = client.post(
        "/login",
        data={"login": "marketer@example.com", "password": PASSWORD, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def measure_page(
    db: Database, client: TestClient, path: str, requests: int
) -> tuple[float, float, int]:
    """(p95 of the page, p95 of its bare statements, number of statements)."""
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        captured.append((statement, parameters))

    client.get(path)  # warm caches and compiled statements
    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        r = client.get(path)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    statements = [(s, p) for s, p in captured if not s.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
    page_times: list[float] = []
    for _ in range(requests):
        t0 = time.perf_counter()
        client.get(path)
        page_times.append(time.perf_counter() - t0)
    raw_conn = db.engine.raw_connection()
    sql_times: list[float] = []
    try:
        cursor = raw_conn.cursor()
        for _ in range(requests):
            t0 = time.perf_counter()
            for statement, parameters in statements:
                cursor.execute(statement, parameters)
                cursor.fetchall() if cursor.description else None
            sql_times.append(time.perf_counter() - t0)
            raw_conn.rollback()
    finally:
        raw_conn.close()
    return p95(page_times), p95(sql_times), len(statements)


def pages(info: dict[str, Any]) -> list[tuple[str, str]]:
    big = info["big_campaign"]
    domain = '[["country_code", "=", "FR"], ["email", "ilike", "user1"]]'
    return [
        ("campaigns board", "/campaigns"),
        ("campaign form (12 activities)", f"/campaigns/{big}"),
        ("workflow tree (12 activities)", f"/campaigns/{big}/workflow"),
        ("filter count", f"/api/v1/records/contact/count?filter={domain}"),
    ]


def run(backend: str, args: argparse.Namespace) -> list[tuple[str, float]]:
    ratios: list[tuple[str, float]] = []
    with fresh_database(backend, "ui_pages") as db, TemporaryDirectory() as tmp:
        print(
            f"[{backend}] generating {args.contacts:,} contacts, {args.campaigns} campaigns, "
            f"~{args.traces:,} traces …",
            flush=True,
        )
        t0 = time.perf_counter()
        info = build_data(db, args.contacts, args.campaigns, args.traces)
        with db.read() as s:
            n_traces = s.execute(text("SELECT count(*) FROM trace")).scalar()
        print(f"[{backend}] {n_traces:,} traces ready in {time.perf_counter() - t0:.0f} s", flush=True)
        settings = Settings(
            data_dir=Path(tmp), database_url=db.url, secret_key="b" * 40,
            base_url="http://testserver", embedded_worker=False,
        )
        app = create_app(Runtime(settings=settings, db=db))
        with TestClient(app) as client:
            _login(client)
            for name, path in pages(info):
                page_p95, sql_p95, n = measure_page(db, client, path, args.requests)
                ratio = page_p95 / sql_p95 if sql_p95 > 0 else float("inf")
                verdict = "OK" if ratio <= TARGET else "OVER"
                print(
                    f"[{backend}] {name:32s} p95 {page_p95 * 1000:8.1f} ms  bare SQL "
                    f"({n} statements) p95 {sql_p95 * 1000:8.1f} ms  ratio {ratio:5.2f} "
                    f"(target ≤ {TARGET:g}) {verdict}",
                    flush=True,
                )
                ratios.append((name, ratio))
    return ratios


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="UI page server time vs bare SQL")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--traces", type=int, default=5_000_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)
    for backend in backends(args.backend):
        run(backend, args)

if __name__ == "__main__":
    main()
