"""Participants of a campaign and their traces, as the marketer sees them (SPEC §5):
a filtered, paginated list, one participant's timeline, and the two hand actions
(*Cancel* a scheduled trace, *Remove* a participant).

Listing runs a fixed number of statements per page (participants, their records' names,
their trace summary, a capped total), whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity, Campaign
from nurture.engine.models import PARTICIPANT_STATES, TRACE_STATES, Participant, Trace
from nurture.engine.schedule import cancel_scheduled, complete_participants
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records.catalog import REGISTRY

#: message events a list can be narrowed to (the trace's timestamp column is set)
EVENTS = ("sent", "opened", "clicked", "replied", "bounced")
MSG_CANCELED_BY_HAND = "Canceled by hand"
MSG_REMOVED_BY_HAND = "Participant removed by hand"
#: the total of a filtered list is counted up to this many rows (then shown as "more than")
COUNT_CAP = 10_000
MAX_PAGE = 200


@dataclass(frozen=True)
class ParticipantRow:
    id: int
    res_id: int
    record_name: str
    record_email: str | None
    state: str
    is_test: bool
    created_at: datetime
    updated_at: datetime
    steps_done: int
    steps_scheduled: int
    last_activity: str | None


@dataclass(frozen=True)
class ParticipantPage:
    rows: list[ParticipantRow]
    #: the ``after`` value of the next page (``None``: this is the last page)
    next_after: int | None
    #: matching participants, counted up to :data:`COUNT_CAP` (``capped``: there are more)
    total: int
    capped: bool


def record_labels(
    session: Session, *, model: str, ids: Sequence[int]
) -> dict[int, tuple[str, str | None]]:
    """``{id: (display name, email)}`` of records of a target model (one query)."""
    if not ids:
        return {}
    mdef = REGISTRY.get(model)
    orm = mdef.orm
    name_col = getattr(orm, mdef.rec_name)
    email_col = getattr(orm, mdef.email_field) if mdef.email_field else None
    columns = [orm.id, name_col] + ([email_col] if email_col is not None else [])
    result: dict[int, tuple[str, str | None]] = {}
    for row in session.execute(select(*columns).where(orm.id.in_(list(set(ids))))):
        name = row[1]
        email = row[2] if email_col is not None else None
        label = str(name) if name not in (None, "") else f"{mdef.label} {row[0]}"
        result[int(row[0])] = (label, email)
    return result


def _event_column(event: str) -> Any:
    if event not in EVENTS:
        raise ValidationError(f"unknown event {event!r} (known: {', '.join(EVENTS)})", field="event")
    return getattr(Trace, f"{event}_at")


def list_participants(
    session: Session,
    *,
    campaign_id: int,
    state: str | None = None,
    is_test: bool | None = None,
    activity_id: int | None = None,
    trace_state: str | None = None,
    event: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> ParticipantPage:
    """One page of a campaign's participants, newest first (keyset on the id: ``after`` is
    the last id of the previous page).

    ``activity_id`` keeps the participants with a trace of that activity, narrowed by that
    trace's ``trace_state`` and message ``event`` (``opened``…) when given — the figures of
    the workflow tree link here with them.
    """
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist", field="campaign_id")
    if state is not None and state not in PARTICIPANT_STATES:
        raise ValidationError(
            f"unknown state {state!r} (known: {', '.join(PARTICIPANT_STATES)})", field="state"
        )
    if trace_state is not None and trace_state not in TRACE_STATES:
        raise ValidationError(
            f"unknown trace state {trace_state!r} (known: {', '.join(TRACE_STATES)})",
            field="trace_state",
        )
    limit = max(1, min(int(limit), MAX_PAGE))
    conditions: list[Any] = [Participant.campaign_id == campaign_id]
    if state is not None:
        conditions.append(Participant.state == state)
    if is_test is not None:
        conditions.append(Participant.is_test.is_(is_test))
    if activity_id is not None or trace_state is not None or event is not None:
        trace_conditions: list[Any] = [Trace.participant_id == Participant.id]
        if activity_id is not None:
            trace_conditions.append(Trace.activity_id == activity_id)
        if trace_state is not None:
            trace_conditions.append(Trace.state == trace_state)
        if event is not None:
            trace_conditions.append(_event_column(event).is_not(None))
        conditions.append(exists().where(*trace_conditions))
    page_stmt = select(Participant).where(*conditions)
    if after is not None:
        page_stmt = page_stmt.where(Participant.id < after)
    found = list(session.scalars(page_stmt.order_by(Participant.id.desc()).limit(limit + 1)))
    more = len(found) > limit
    found = found[:limit]
    capped_ids = select(Participant.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
    total = int(session.scalar(select(func.count()).select_from(capped_ids)) or 0)
    ids = [p.id for p in found]
    labels = record_labels(session, model=campaign.model, ids=[p.res_id for p in found])
    summary: dict[int, tuple[int, int, str | None]] = {}
    if ids:
        last_done = (
            select(Activity.name)
            .join(Trace, Trace.activity_id == Activity.id)
            .where(Trace.participant_id == Participant.id, Trace.executed_at.is_not(None))
            .order_by(Trace.executed_at.desc(), Trace.id.desc())
            .limit(1)
            .correlate(Participant)
            .scalar_subquery()
        )
        done = func.sum(case((Trace.state.in_(("processed", "rejected", "error")), 1), else_=0))
        waiting = func.sum(case((Trace.state == "scheduled", 1), else_=0))
        for pid, n_done, n_waiting, last in session.execute(
            select(Participant.id, done, waiting, last_done)
            .outerjoin(Trace, Trace.participant_id == Participant.id)
            .where(Participant.id.in_(ids))
            .group_by(Participant.id)
        ):
            summary[int(pid)] = (int(n_done or 0), int(n_waiting or 0), last)
    rows = []
    for p in found:
        name, email = labels.get(p.res_id, (f"{campaign.model} {p.res_id} (deleted)", None))
        n_done, n_waiting, last = summary.get(p.id, (0, 0, None))
        rows.append(
            ParticipantRow(
                id=p.id,
                res_id=p.res_id,
                record_name=name,
                record_email=email,
                state=p.state,
                is_test=p.is_test,
                created_at=p.created_at,
                updated_at=p.updated_at,
                steps_done=n_done,
                steps_scheduled=n_waiting,
                last_activity=last,
            )
        )
    return ParticipantPage(
        rows=rows,
        next_after=ids[-1] if more and ids else None,
        total=min(total, COUNT_CAP),
        capped=total > COUNT_CAP,
    )


def get_participant(session: Session, *, campaign_id: int, participant_id: int) -> Participant:
    participant = session.get(Participant, participant_id)
    if participant is None or participant.campaign_id != campaign_id:
        raise NotFound(
            f"participant {participant_id} does not exist in campaign {campaign_id}",
            field="participant_id",
        )
    return participant


def get_trace(session: Session, *, participant_id: int, trace_id: int) -> Trace:
    trace = session.get(Trace, trace_id)
    if trace is None or trace.participant_id != participant_id:
        raise NotFound(
            f"trace {trace_id} does not exist for participant {participant_id}", field="trace_id"
        )
    return trace


def cancel_trace(
    session: Session, *, trace_id: int, now: datetime, message: str = MSG_CANCELED_BY_HAND
) -> Trace:
    """*Cancel* a scheduled trace by hand; its participant completes if nothing is left."""
    trace = session.get(Trace, trace_id)
    if trace is None:
        raise NotFound(f"trace {trace_id} does not exist", field="trace_id")
    if trace.state != "scheduled":
        raise Conflict(f"only a scheduled step can be canceled; this one is {trace.state}", field="trace_id")
    cancel_scheduled(session, trace_filter=Trace.id == trace.id, message=message, now=now)
    complete_participants(session, now=now, participant_ids=[trace.participant_id])
    session.expire_all()
    refreshed = session.get(Trace, trace_id)
    assert refreshed is not None
    return refreshed


def remove_participant(
    session: Session, *, participant_id: int, now: datetime, message: str = MSG_REMOVED_BY_HAND
) -> Participant:
    """*Remove* a participant: it becomes ``removed`` and its scheduled traces are canceled.
    The record is not enrolled again in this campaign (its participant row stays)."""
    participant = session.get(Participant, participant_id)
    if participant is None:
        raise NotFound(f"participant {participant_id} does not exist", field="participant_id")
    if participant.state == "removed":
        raise Conflict("this participant is already removed", field="participant_id")
    cancel_scheduled(
        session, trace_filter=Trace.participant_id == participant.id, message=message, now=now
    )
    participant.state = "removed"
    participant.updated_at = now
    session.flush()
    return participant
