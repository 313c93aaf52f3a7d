"""Three demo campaigns with three weeks of history, made by the engine under simulated time.

Nothing here inserts traces, participants or messages: the campaigns are built by the
campaign services (the welcome flow from a template given as data, the others from the
SPEC §11 templates), started and stopped by them, and the engine itself runs them with an
explicit ``now`` that walks from three weeks ago to the present a day at a time
(what ``nurture tick --now`` does): enrolment, due traces, delivery. Recipients are
simulated through the engine's own paths: people sign up to the newsletter over the three
weeks (the record services' change notification enrols them), a seeded random draws who
opens, clicks and replies and when (engine ``apply_events`` at the event's own time, which
dates the opened / clicked children and cancels the "not opened" ones), and a few addresses
are refused at send time by the demo outbox (a permanent SMTP refusal: the delivery code
records the bounce, runs the bounce child and applies the auto-blacklist rule).

Email goes to an outbox that never opens a connection, whatever ``NURTURE_SMTP_URL`` says.
Every time written is at or before ``now``; only scheduled traces (reminders, follow-ups)
are dated later, and the in-process worker runs them when they come.

The history is only made in a database without campaigns: the simulated ticks run every
running campaign and every due trace, which must be ours alone.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.campaign_templates import create_from_template, emails
from nurture.campaign_templates.catalog import TAG_HOT_CONTACTS, WELCOME_FLOW
from nurture.campaign_templates.spec import (
    ActivitySpec,
    CampaignTemplate,
)
from nurture.campaigns import campaigns
from nurture.campaigns.models import Activity, Campaign
from nurture.channels.email.delivery import DatabaseOutbox
from nurture.channels.email.transports import SENT, Outcome, SendResult
from nurture.db import Database
from nurture.engine.events import apply_events, event_trace_query
from nurture.engine.models import Trace
from nurture.records.demo import ADMIN_LOGIN, add_subscribers
from nurture.records.models import User
from nurture.worker.loop import tick

log = logging.getLogger(__name__)

SEED = 20261204
DAYS = 21
#: simulated time advances a day at a time, the engine running each morning at
#: ``TICK_HOUR`` (UTC), and ``NEXT_PASS`` after each change the demo makes (a campaign
#: started, stopped): few passes keep the loading quick
TICK_HOUR = 9
NEXT_PASS = timedelta(seconds=20)

#: share of the delivered emails that are opened, clicked, replied to (a click or a reply
#: is also an open); share of the addresses refused at send time
OPEN_RATE = 0.45
CLICK_RATE = 0.12
REPLY_RATE = 0.03
BOUNCE_RATE = 0.02
#: new newsletter subscribers per day (weekdays, weekends)
SIGNUPS = ((9, 17), (4, 9))

RUNNING = "Welcome new subscribers"
STOPPED = "Spring catalog prospection"
DRAFT = "Tag Hot Contacts"

#: the welcome flow of SPEC §11 with opened / clicked / not-opened children
WELCOME_HISTORY = CampaignTemplate(
    key="welcome_history",
    title=RUNNING,
    description="Welcome new newsletter subscribers and follow up on their reactions.",
    model="mailing_contact",
    # new subscribers: the newsletter's members created in the last 30 days (and not later:
    # under simulated time the records of the present already exist)
    domain=(
        ("subscriptions.list.name", "=", "Newsletter"),
        ("created_at", ">=", {"relative": "-30d"}),
        ("created_at", "<=", {"relative": "0h"}),
    ),
    lists=WELCOME_FLOW.lists,
    tags=("Hot",),
    actions=(*WELCOME_FLOW.actions, *TAG_HOT_CONTACTS.actions),
    activities=(
        WELCOME_FLOW.activities[0],  # the welcome email, at once
        ActivitySpec(
            "guides",
            "Getting started guides",
            "email",
            trigger="mail_open",
            parent="welcome",
            interval=1,
            unit="days",
            email=emails.GETTING_STARTED,
        ),
        ActivitySpec(
            "hot", "Tag as Hot", "action", trigger="mail_click", parent="welcome", action="tag_hot"
        ),
        ActivitySpec(
            "reminder",
            "Still interested?",
            "email",
            trigger="mail_not_open",
            parent="welcome",
            interval=5,
            unit="days",
            email=emails.STILL_INTERESTED,
        ),
        WELCOME_FLOW.activities[1],  # bounced: blacklist, leave the newsletter
    ),
)


class DemoOutbox(DatabaseOutbox):
    """The database outbox, refusing a seeded few addresses as a mail server would (550)."""

    def __init__(self, seed: int = SEED, rate: float = BOUNCE_RATE) -> None:
        self.seed = seed
        self.rate = rate

    def refuses(self, address: str) -> bool:
        return random.Random(f"{self.seed}:{address.lower()}").random() < self.rate

    def send(self, message: Any, *, envelope_from: str, recipients: Sequence[str]) -> SendResult:
        for address in recipients:
            if self.refuses(address):
                return SendResult(
                    Outcome.PERMANENT,
                    f"550 5.1.1 <{address}>: Recipient address rejected: User unknown",
                    550,
                )
        return SENT


@dataclass
class History:
    """What :func:`load_history` made."""

    campaigns: dict[str, int] = field(default_factory=dict)  # state -> campaign id
    names: dict[str, str] = field(default_factory=dict)  # state -> campaign name
    ticks: int = 0
    signups: int = 0
    sent: int = 0
    events: dict[str, int] = field(default_factory=dict)


@dataclass(order=True)
class _Event:
    at: datetime
    trace_id: int
    event: str


class Interrupted(Exception):
    """A stop was asked while the history was being made."""


class _Simulation:
    def __init__(
        self,
        db: Database,
        *,
        now: datetime,
        rng: random.Random,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.db = db
        self.should_stop = should_stop
        self.now = now
        self.rng = rng
        self.pending: list[_Event] = []
        self.outbox = DemoOutbox()
        self.history = History()
        self.last_tick: datetime | None = None

    # --- recipients -------------------------------------------------------------------------

    def signups(self, since: datetime, until: datetime) -> None:
        """The newsletter sign-ups of (since, until], at random times."""
        times: list[datetime] = []
        day = since.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < until:
            low, high = SIGNUPS[1] if day.weekday() >= 5 else SIGNUPS[0]
            per_day = random.Random(f"{SEED}:{day.date()}").randint(low, high)
            day_rng = random.Random(f"{SEED}:{day.date()}:times")
            for _ in range(per_day):
                # people sign up in the daytime, mostly
                when = day + timedelta(hours=day_rng.triangular(6, 23, 14))
                if since < when <= until:
                    times.append(when)
            day += timedelta(days=1)
        if times:
            times.sort()
            with self.db.transaction() as session:
                add_subscribers(session, rng=self.rng, times=times, now=until)
            self.history.signups += len(times)

    def plan_reactions(self, since: datetime | None, until: datetime) -> None:
        """Draw opens, clicks and replies for the campaign emails sent in (since, until]."""
        with self.db.read() as session:
            stmt = (
                select(Trace.id, Trace.sent_at)
                .join(Activity, Activity.id == Trace.activity_id)
                .where(Activity.activity_type == "email", Trace.sent_at <= until)
                .order_by(Trace.id)
            )
            if since is not None:
                stmt = stmt.where(Trace.sent_at > since)
            sent = session.execute(stmt).all()
        rng = self.rng
        for trace_id, sent_at in sent:
            self.history.sent += 1
            if rng.random() >= OPEN_RATE / (1 - BOUNCE_RATE):
                continue
            # most opens come within hours, some days later
            opened = sent_at + timedelta(hours=min(rng.lognormvariate(1.0, 1.3), 24 * 9))
            heapq.heappush(self.pending, _Event(opened, trace_id, "open"))
            if rng.random() < CLICK_RATE / OPEN_RATE:
                clicked = opened + timedelta(minutes=rng.uniform(0.3, 20))
                heapq.heappush(self.pending, _Event(clicked, trace_id, "click"))
            if rng.random() < REPLY_RATE / OPEN_RATE:
                replied = opened + timedelta(minutes=rng.uniform(5, 600))
                heapq.heappush(self.pending, _Event(replied, trace_id, "reply"))

    def react(self, until: datetime) -> None:
        """Apply the reactions due by ``until``, each at its own time, in time order."""
        due: list[_Event] = []
        while self.pending and self.pending[0].at <= until:
            due.append(heapq.heappop(self.pending))
        if not due:
            return
        with self.db.transaction() as session:
            conn = session.connection()
            query = event_trace_query(
                conn.dialect.name, where=Trace.id.in_(sorted({e.trace_id for e in due}))
            )
            rows = {row[0]: row for row in conn.execute(query)}
            apply_events(conn, [(rows[e.trace_id], e.event, e.at) for e in due])
        for e in due:
            self.history.events[e.event] = self.history.events.get(e.event, 0) + 1

    # --- the engine ---------------------------------------------------------------------------

    def run_until(self, until: datetime) -> None:
        """Step the engine from the last tick to ``until``: sign-ups, reactions, ticks."""
        t = self.last_tick
        while t is None or t < until:
            if self.should_stop():
                raise Interrupted
            nxt = until if t is None else min(_next_morning(t), until)
            if t is not None:
                self.signups(t, nxt)
            self.react(nxt)
            tick(self.db, now=nxt, worker_id="demo-history", email_transport=self.outbox)
            self.history.ticks += 1
            self.plan_reactions(t, nxt)
            t = self.last_tick = nxt

    @contextmanager
    def at(self, when: datetime) -> Iterator[Session]:
        """A transaction at ``when`` (the engine brought up to it first); the runner's next
        pass follows a few seconds later (a started campaign enrols there)."""
        self.run_until(when)
        with self.db.transaction() as session:
            yield session
        self.run_until(when + NEXT_PASS)


def _next_morning(t: datetime) -> datetime:
    morning = t.replace(hour=TICK_HOUR, minute=0, second=0, microsecond=0)
    return morning if morning > t else morning + timedelta(days=1)


def _has_campaigns(db: Database) -> bool:
    with db.read() as session:
        return session.scalar(select(Campaign.id).limit(1)) is not None


def _admin_id(db: Database) -> int | None:
    with db.read() as session:
        return session.scalar(select(User.id).where(User.login == ADMIN_LOGIN))


def load_history(
    db: Database, *, now: datetime, should_stop: Callable[[], bool] = lambda: False
) -> History | None:
    """Make the three demo campaigns and their history up to ``now`` (module doc).

    None (and nothing done) when the database already holds a campaign. When
    ``should_stop`` turns true (a server stopping during its first start) the simulation
    ends between two steps and the demo campaigns still running are stopped, so that no
    later start catches up on the weeks left out; None then too."""
    if _has_campaigns(db):
        return None
    sim = _Simulation(db, now=now, rng=random.Random(SEED), should_stop=should_stop)
    try:
        return _simulate(sim, db, now)
    except Interrupted:
        at = sim.last_tick or now
        with db.transaction() as session:
            for campaign_id in session.scalars(
                select(Campaign.id).where(Campaign.state == "running")
            ).all():
                campaigns.stop_campaign(session=session, now=at, campaign_id=campaign_id)
        log.warning("demo history interrupted at %s: its campaigns are stopped", at.isoformat())
        return None


def _simulate(sim: _Simulation, db: Database, now: datetime) -> History:
    start = now - timedelta(days=DAYS)
    owner = _admin_id(db)
    history = sim.history
    # a running welcome flow, started three weeks ago
    created = start - timedelta(hours=2)
    with sim.at(created) as session:
        running = create_from_template(
            session=session, now=created, key=WELCOME_HISTORY, responsible_id=owner
        )
        running_id = running.id
    with sim.at(start) as session:
        campaigns.start_campaign(session=session, now=start, campaign_id=running_id)

    # a prospection campaign that ran four days, then was stopped
    created = start + timedelta(days=2, hours=10)
    with sim.at(created) as session:
        stopped = create_from_template(
            session=session, now=created, key="commercial_prospection", name=STOPPED, responsible_id=owner
        )
        stopped_id = stopped.id
    launched = created + timedelta(days=1)
    with sim.at(launched) as session:
        campaigns.start_campaign(session=session, now=launched, campaign_id=stopped_id)
    halted = launched + timedelta(days=4, hours=5)
    with sim.at(halted) as session:
        campaigns.stop_campaign(session=session, now=halted, campaign_id=stopped_id)

    # a draft prepared two days ago
    drafted = now - timedelta(days=2, hours=3)
    with sim.at(drafted) as session:
        draft = create_from_template(
            session=session, now=drafted, key="tag_hot_contacts", name=DRAFT, responsible_id=owner
        )
        draft_id = draft.id

    sim.run_until(now)
    history.campaigns = {"running": running_id, "stopped": stopped_id, "draft": draft_id}
    history.names = {"running": RUNNING, "stopped": STOPPED, "draft": DRAFT}
    return history

