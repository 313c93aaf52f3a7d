"""Campaign-level figures (SPEC §3 board, §9 per campaign): participants by state, tests,
clicks, templates, and the daily series of processed traces shown on the campaigns board.

Every function is keyword-only, set-based and runs a fixed number of statements whatever the
number of campaigns or participants: the board asks for all its cards at once
(:func:`board_cards`: three statements), never one query per card. Test participants and
their traces are excluded everywhere (SPEC §5 test mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Integer, case, distinct, func, literal, select, union_all
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity, Campaign
from nurture.channels.email.models import EmailTemplate, LinkClick, TrackedLink
from nurture.channels.sms.models import SmsTemplate
from nurture.engine.models import Participant, Trace
from nurture.records.catalog import REGISTRY
from nurture.records.models import User

#: days in the board's sparkline (SPEC §9: "the last 15 days")
SERIES_DAYS = 15


@dataclass(frozen=True)
class ParticipantCounts:
    """Real participants by state, and the number of test participants."""

    running: int = 0
    completed: int = 0
    removed: int = 0
    tests: int = 0

    @property
    def total(self) -> int:
        return self.running + self.completed + self.removed


@dataclass(frozen=True)
class BoardCard:
    """One card of the campaigns board."""

    id: int
    name: str
    model: str
    model_label: str
    state: str
    workflow_modified: bool
    responsible: str | None
    activities: int
    running: int
    completed: int
    #: processed traces per day, oldest first, the last value is today (``now``'s day)
    processed: list[int] = field(default_factory=list)
    days: list[date] = field(default_factory=list)

    @property
    def processed_total(self) -> int:
        return sum(self.processed)


@dataclass(frozen=True)
class CampaignCounters:
    """The smart counters of the campaign form."""

    participants: ParticipantCounts
    clicks: int
    templates: int


@dataclass(frozen=True)
class LinkStat:
    """Clicks on one tracked URL of a campaign."""

    id: int
    campaign_id: int
    url: str
    code: str
    clicks: int
    unique_clicks: int
    machine_clicks: int
    last_click_at: datetime | None


@dataclass(frozen=True)
class ClickRow:
    """One click by a person on a tracked link (the clicks list of a campaign)."""

    id: int
    at: datetime
    url: str
    trace_id: int
    participant_id: int
    res_id: int
    activity_id: int
    activity_name: str


@dataclass(frozen=True)
class TemplateRow:
    """An email or SMS template of one of a campaign's activities."""

    kind: str  # "email" | "sms"
    id: int
    title: str  # the subject of an email, the text of an SMS
    activity_id: int
    activity_name: str
    updated_at: datetime


def _day_key(value: Any) -> date | None:
    """A day as the database returns it (a ``date`` on PostgreSQL, text on SQLite)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def series_days(*, now: datetime, days: int = SERIES_DAYS) -> list[date]:
    """The ``days`` calendar days ending with ``now``'s day, oldest first."""
    last = now.date()
    return [last - timedelta(days=days - 1 - i) for i in range(days)]


def participant_counts_by_campaign(
    session: Session, *, campaign_ids: Sequence[int]
) -> dict[int, ParticipantCounts]:
    """Participants by state (and tests) for each campaign, in one grouped query."""
    ids = list(campaign_ids)
    if not ids:
        return {}
    acc: dict[int, dict[str, int]] = {}
    for campaign_id, state, is_test, n in session.execute(
        select(Participant.campaign_id, Participant.state, Participant.is_test, func.count())
        .where(Participant.campaign_id.in_(ids))
        .group_by(Participant.campaign_id, Participant.state, Participant.is_test)
    ):
        counts = acc.setdefault(int(campaign_id), {})
        key = "tests" if is_test else str(state)
        counts[key] = counts.get(key, 0) + int(n)
    known = {"running", "completed", "removed", "tests"}
    return {
        cid: ParticipantCounts(**{k: v for k, v in c.items() if k in known})
        for cid, c in acc.items()
    }


def participant_counts(session: Session, *, campaign_id: int) -> ParticipantCounts:
    """Real participants of one campaign by state, and its number of test participants."""
    return participant_counts_by_campaign(session, campaign_ids=[campaign_id]).get(
        campaign_id, ParticipantCounts()
    )


def processed_series(
    session: Session, *, campaign_ids: Sequence[int], now: datetime, days: int = SERIES_DAYS
) -> dict[int, list[int]]:
    """Processed (real) traces per day over the last ``days`` days for each campaign, in one
    grouped query; every campaign of ``campaign_ids`` gets a full series (zeros included)."""
    ids = list(campaign_ids)
    calendar = series_days(now=now, days=days)
    start = datetime.combine(calendar[0], time.min)
    end = datetime.combine(calendar[-1] + timedelta(days=1), time.min)
    result = {cid: [0] * days for cid in ids}
    if not ids:
        return result
    index = {d: i for i, d in enumerate(calendar)}
    day = func.date(Trace.executed_at)
    for campaign_id, raw_day, n in session.execute(
        select(Trace.campaign_id, day, func.count())
        .where(
            Trace.campaign_id.in_(ids),
            Trace.is_test.is_(False),
            Trace.state == "processed",
            Trace.executed_at >= start,
            Trace.executed_at < end,
        )
        .group_by(Trace.campaign_id, day)
    ):
        position = index.get(_day_key(raw_day))  # type: ignore[arg-type]
        if position is not None:
            result[int(campaign_id)][position] += int(n)
    return result


def _name_matches(q: str | None) -> Any:
    if not q or not q.strip():
        return None
    return func.lower(Campaign.name).contains(q.strip().lower(), autoescape=True)


def board_cards(
    session: Session, *, now: datetime, q: str | None = None, days: int = SERIES_DAYS
) -> list[BoardCard]:
    """The cards of the campaigns board (name contains ``q``, any case), newest first, with
    participants running/completed and the processed series: three statements in all."""
    activities = (
        select(func.count(Activity.id))
        .where(Activity.campaign_id == Campaign.id)
        .correlate(Campaign)
        .scalar_subquery()
    )
    stmt = (
        select(
            Campaign.id,
            Campaign.name,
            Campaign.model,
            Campaign.state,
            Campaign.workflow_modified,
            User.name.label("responsible"),
            activities.label("activities"),
        )
        .outerjoin(User, User.id == Campaign.responsible_id)
        .order_by(Campaign.updated_at.desc(), Campaign.id.desc())
    )
    matches = _name_matches(q)
    if matches is not None:
        stmt = stmt.where(matches)
    rows = session.execute(stmt).all()
    ids = [int(r.id) for r in rows]
    counts = participant_counts_by_campaign(session, campaign_ids=ids)
    series = processed_series(session, campaign_ids=ids, now=now, days=days)
    calendar = series_days(now=now, days=days)
    labels = {m.name: m.label for m in REGISTRY.targets()}
    cards = []
    for r in rows:
        c = counts.get(int(r.id), ParticipantCounts())
        cards.append(
            BoardCard(
                id=int(r.id),
                name=r.name,
                model=r.model,
                model_label=labels.get(r.model, r.model),
                state=r.state,
                workflow_modified=bool(r.workflow_modified),
                responsible=r.responsible,
                activities=int(r.activities or 0),
                running=c.running,
                completed=c.completed,
                processed=series[int(r.id)],
                days=calendar,
            )
        )
    return cards


def human_clicks(*, campaign_id: int) -> Any:
    """Clicks by people on a campaign's tracked links, test traces excluded (a ``select``)."""
    return (
        select(LinkClick.id)
        .join(TrackedLink, TrackedLink.id == LinkClick.link_id)
        .join(Trace, Trace.id == LinkClick.trace_id)
        .where(
            TrackedLink.campaign_id == campaign_id,
            LinkClick.machine.is_(False),
            Trace.is_test.is_(False),
        )
    )


def campaign_counters(session: Session, *, campaign_id: int) -> CampaignCounters:
    """Participants (by state), tests, clicks and templates of one campaign (two statements)."""
    participants = participant_counts(session, campaign_id=campaign_id)
    clicks = select(func.count()).select_from(human_clicks(campaign_id=campaign_id).subquery())
    emails = (
        select(func.count(EmailTemplate.id))
        .join(Activity, Activity.id == EmailTemplate.activity_id)
        .where(Activity.campaign_id == campaign_id)
    )
    sms = (
        select(func.count(SmsTemplate.id))
        .join(Activity, Activity.id == SmsTemplate.activity_id)
        .where(Activity.campaign_id == campaign_id)
    )
    row = session.execute(
        select(clicks.scalar_subquery(), emails.scalar_subquery(), sms.scalar_subquery())
    ).one()
    return CampaignCounters(
        participants=participants,
        clicks=int(row[0] or 0),
        templates=int(row[1] or 0) + int(row[2] or 0),
    )


def link_stats(
    session: Session,
    *,
    campaign_id: int | None = None,
    after_id: int | None = None,
    limit: int | None = None,
    include_tests: bool = True,
) -> list[LinkStat]:
    """Clicks per tracked URL (by people, distinct recipients, machine hits apart), by link
    id; ``include_tests=False`` leaves out the clicks of test participants."""
    clicks: Any = LinkClick.__table__
    if not include_tests:
        clicks = (
            select(LinkClick)
            .join(Trace, Trace.id == LinkClick.trace_id)
            .where(Trace.is_test.is_(False))
            .subquery()
        )
    human = clicks.c.machine.is_(False)
    stmt = (
        select(
            TrackedLink.id,
            TrackedLink.campaign_id,
            TrackedLink.url,
            TrackedLink.code,
            func.coalesce(func.sum(case((human, 1), else_=0)), 0).cast(Integer).label("clicks"),
            func.count(distinct(case((human, clicks.c.trace_id), else_=None))).label(
                "unique_clicks"
            ),
            func.coalesce(func.sum(case((clicks.c.machine.is_(True), 1), else_=0)), 0)
            .cast(Integer)
            .label("machine_clicks"),
            func.max(case((human, clicks.c.at), else_=None)).label("last_click_at"),
        )
        .outerjoin(clicks, clicks.c.link_id == TrackedLink.id)
        .group_by(TrackedLink.id, TrackedLink.campaign_id, TrackedLink.url, TrackedLink.code)
        .order_by(TrackedLink.id)
    )
    if campaign_id is not None:
        stmt = stmt.where(TrackedLink.campaign_id == campaign_id)
    if after_id is not None:
        stmt = stmt.where(TrackedLink.id > after_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        LinkStat(
            id=int(r.id),
            campaign_id=int(r.campaign_id),
            url=r.url,
            code=r.code,
            clicks=int(r.clicks or 0),
            unique_clicks=int(r.unique_clicks or 0),
            machine_clicks=int(r.machine_clicks or 0),
            last_click_at=r.last_click_at,
        )
        for r in session.execute(stmt)
    ]


def recent_clicks(session: Session, *, campaign_id: int, limit: int = 50) -> list[ClickRow]:
    """The latest clicks by people on a campaign's links (test traces excluded), newest first."""
    stmt = (
        select(
            LinkClick.id,
            LinkClick.at,
            TrackedLink.url,
            Trace.id.label("trace_id"),
            Trace.participant_id,
            Trace.res_id,
            Activity.id.label("activity_id"),
            Activity.name.label("activity_name"),
        )
        .join(TrackedLink, TrackedLink.id == LinkClick.link_id)
        .join(Trace, Trace.id == LinkClick.trace_id)
        .join(Activity, Activity.id == Trace.activity_id)
        .where(
            TrackedLink.campaign_id == campaign_id,
            LinkClick.machine.is_(False),
            Trace.is_test.is_(False),
        )
        .order_by(LinkClick.at.desc(), LinkClick.id.desc())
        .limit(limit)
    )
    return [
        ClickRow(
            id=int(r.id),
            at=r.at,
            url=r.url,
            trace_id=int(r.trace_id),
            participant_id=int(r.participant_id),
            res_id=int(r.res_id),
            activity_id=int(r.activity_id),
            activity_name=r.activity_name,
        )
        for r in session.execute(stmt)
    ]


def campaign_templates(session: Session, *, campaign_id: int) -> list[TemplateRow]:
    """The email and SMS templates of a campaign's activities, in activity order (one query)."""
    def of(kind: str, table: Any, title: Any) -> Any:
        return (
            select(
                literal(kind).label("kind"),
                table.id,
                title.label("title"),
                Activity.id.label("activity_id"),
                Activity.name.label("activity_name"),
                table.updated_at,
            )
            .join(Activity, Activity.id == table.activity_id)
            .where(Activity.campaign_id == campaign_id)
        )

    emails = of("email", EmailTemplate, EmailTemplate.subject)
    sms = of("sms", SmsTemplate, SmsTemplate.body)
    both = union_all(emails, sms).subquery()
    rows = session.execute(select(both).order_by(both.c.activity_id, both.c.kind)).all()
    return [
        TemplateRow(
            kind=str(r.kind),
            id=int(r.id),
            title=str(r.title),
            activity_id=int(r.activity_id),
            activity_name=str(r.activity_name),
            updated_at=r.updated_at,
        )
        for r in rows
    ]
