"""Helpers of the campaign template tests: build a template's campaign, read what happened."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select

from nurture.campaign_templates import create_from_template
from nurture.campaigns import campaigns as cs
from nurture.channels.email.inbound import InboundKind
from nurture.channels.email.receive import handle_inbound
from nurture.db import Database
from nurture.engine.models import Participant, Trace
from nurture.records import service as records
from nurture.tracking.tokens import TokenSigner, message_token
from nurture.worker.loop import Worker
from tests.channels.email.integration.conftest import HUMAN_UA, T0, Env, corpus, links_of, path_of

WEBSITE = "https://shop.example.com"


def start_template(db: Database, key: str, *, now: Any = T0) -> tuple[int, dict[str, int]]:
    """Create the template's campaign, start it; returns (campaign id, activity ids by name)."""
    with db.transaction() as s:
        campaign = create_from_template(session=s, now=now, key=key, website=WEBSITE)
        cs.start_campaign(session=s, now=now, campaign_id=campaign.id)
        activities = {a.name: a.id for a in campaign.activities}
        return campaign.id, activities


def add(db: Database, model: str, values: dict[str, Any], *, now: Any = T0) -> int:
    """A record created through the record services (continuous enrolment hears of it)."""
    with db.transaction() as s:
        return records.create_record(session=s, model=model, values=values, now=now)


def states(db: Database, activity_id: int) -> dict[int, str]:
    """res_id → trace state of an activity."""
    with db.read() as s:
        return {
            int(res_id): state
            for res_id, state in s.execute(
                select(Trace.res_id, Trace.state).where(Trace.activity_id == activity_id)
            )
        }


def trace_of(db: Database, activity_id: int, res_id: int) -> Trace:
    with db.read() as s:
        trace = s.scalars(
            select(Trace).where(Trace.activity_id == activity_id, Trace.res_id == res_id)
        ).one()
        s.expunge(trace)
        return trace


def participants(db: Database, campaign_id: int) -> dict[int, str]:
    with db.read() as s:
        return {
            int(res_id): state
            for res_id, state in s.execute(
                select(Participant.res_id, Participant.state).where(
                    Participant.campaign_id == campaign_id
                )
            )
        }


def mails(env: Env) -> list[tuple[str, str]]:
    """(envelope recipient, subject) of every message the SMTP server received, in order."""
    return [
        (",".join(r.rcpt_tos), str(m["Subject"]))
        for r, m in zip(env.sink.received, env.messages(), strict=True)
    ]


def message_to(env: Env, address: str, subject: str | None = None) -> EmailMessage:
    found = [
        m
        for m in env.messages()
        if address in str(m["To"]) and (subject is None or str(m["Subject"]) == subject)
    ]
    assert len(found) == 1, [(m["To"], m["Subject"]) for m in env.messages()]
    return found[0]


def pixel(message: EmailMessage) -> str:
    return path_of(next(u for u in links_of(message) if "/t/o/" in u))


def click_link(message: EmailMessage) -> str:
    return path_of(next(u for u in links_of(message) if "/t/c/" in u))


def open_mail(env: Env, message: EmailMessage) -> None:
    response = env.client.get(pixel(message), headers={"User-Agent": HUMAN_UA})
    assert response.status_code == 200


def click_mail(env: Env, message: EmailMessage) -> str:
    """Click the email's call to action; returns where the redirect leads."""
    response = env.client.get(click_link(message), headers={"User-Agent": HUMAN_UA})
    assert response.status_code == 302
    return str(response.headers["location"])


def bounce(env: Env, trace_id: int, *, now: datetime) -> None:
    """A Gmail DSN for the trace's message, through the inbound path the ``nurture inbound``
    pipe and the SMTP listener share (at the test's time: the pipe reads the wall clock)."""
    token = message_token(TokenSigner.from_settings(env.settings), trace_id)
    result = handle_inbound(env.db, corpus("gmail_dsn.eml", token), now=now)
    assert result.kind is InboundKind.BOUNCE and result.trace_id == trace_id


@contextmanager
def running_worker(db: Database, clock: Callable[[], Any]) -> Iterator[Worker]:
    """A worker loop in a thread (as ``nurture serve`` runs it), on the test's clock."""
    worker = Worker(db, poll_interval=0.05, clock=clock)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(10)


def wait_for(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held (polled), or fail after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start
