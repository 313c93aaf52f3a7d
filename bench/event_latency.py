"""p99 time from recording a click to the interval-0 child executed by a running worker.

    .venv/bin/python -m bench.event_latency [--backend sqlite|postgresql|both] [--events N]
                                            [--mode process|thread|both]

``process``: a separate ``nurture worker`` process (it learns about the new due trace by
polling, every 0.2 s by default); ``thread``: the in-process runner of ``nurture serve``
(woken at once by the event). Each click is recorded through
:func:`nurture.engine.events.record_event` in its own transaction; the clock stops when
the child trace is seen ``processed``. Target: p99 < 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from sqlalchemy import select, update

from bench._engine_common import backends, fresh_database, generate_contacts
from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.clock import utcnow
from nurture.config import load_settings
from nurture.db import Database
from nurture.engine.enrol import enrol_campaign
from nurture.engine.events import record_event
from nurture.engine.models import Trace
from nurture.engine.schedule import create_children
from nurture.runtime import Runtime
from nurture.worker.runner import InProcessRunner


def prepare(db: Database, events: int) -> tuple[list[int], int]:
    """A running campaign whose e-mail step is sent to ``events`` contacts, clicks awaited."""
    generate_contacts(db, events)
    now = utcnow()
    with db.transaction() as s:
        campaign = cs.create_campaign(session=s, now=now, name="Latency", model="contact")
        mail = activity_service.add_activity(
            session=s, now=now, campaign_id=campaign.id, name="Mail", activity_type="email",
            interval_number=1, interval_unit="months",
        )
        action = action_service.create_server_action(
            session=s, now=now, name="Hot", model="contact", values={"city": "Clicked"}
        )
        child = activity_service.add_activity(
            session=s, now=now, campaign_id=campaign.id, name="Clicked", activity_type="action",
            server_action_id=action.id, trigger_type="mail_click", parent_id=mail.id,
        )
        cs.start_campaign(session=s, now=now, campaign_id=campaign.id)
        enrol_campaign(s, campaign_id=campaign.id, now=now)
        # the e-mails "were sent": processed, with their click children waiting
        sent = Trace.activity_id == mail.id
        s.execute(update(Trace).where(sent).values(state="processed", executed_at=now))
        create_children(s, children=[child], parent_filter=sent, now=now)
        parents = list(s.scalars(select(Trace.id).where(sent).order_by(Trace.id)))
        return parents, child.id


def measure(db: Database, parents: list[int], child_activity: int) -> list[float]:
    latencies = []
    for parent_id in parents:
        start = time.perf_counter()
        with db.transaction() as s:
            record_event(s, trace_id=parent_id, event="click", now=utcnow())
        while True:
            with db.read() as s:
                state = s.scalar(
                    select(Trace.state).where(
                        Trace.parent_id == parent_id, Trace.activity_id == child_activity
                    )
                )
            if state == "processed":
                break
            if time.perf_counter() - start > 10:
                raise RuntimeError("child not executed within 10 s")
            time.sleep(0.002)
        latencies.append(time.perf_counter() - start)
        time.sleep(0.01)
    return latencies


def run(backend: str, events: int, mode: str) -> float:
    with fresh_database(backend, "latency") as db:
        parents, child = prepare(db, events)
        worker: subprocess.Popen[bytes] | None = None
        runner: InProcessRunner | None = None
        if mode == "process":
            env = {**os.environ, "NURTURE_DATABASE_URL": db.url, "NURTURE_DATA_DIR": "/tmp/nurture-bench-data"}
            worker = subprocess.Popen(
                [sys.executable, "-c", "from nurture.cli import main; main()", "worker", "--poll", "0.2"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            settings = load_settings({"NURTURE_DATABASE_URL": db.url, "NURTURE_DATA_DIR": "/tmp/nurture-bench-data"})
            runner = InProcessRunner(Runtime(settings=settings, db=db))
            runner.start()
        try:
            time.sleep(2.0)  # let the worker start and finish its first sync
            latencies = measure(db, parents, child)
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(30)
            if runner is not None:
                runner.stop()
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(round(0.99 * len(latencies))) - 1)]
        print(
            f"[{backend}/{mode}] {len(latencies)} clicks: p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms  "
            f"max {latencies[-1] * 1000:.0f} ms (target p99 < 1000 ms) {'OK' if p99 < 1 else 'OVER'}",
            flush=True,
        )
        return p99


def main() -> None:
    parser = argparse.ArgumentParser(description="Event latency benchmark")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--mode", choices=["process", "thread", "both"], default="both")
    args = parser.parse_args()
    modes = ["process", "thread"] if args.mode == "both" else [args.mode]
    for backend in backends(args.backend):
        for mode in modes:
            run(backend, args.events, mode)


if __name__ == "__main__":
    main()
