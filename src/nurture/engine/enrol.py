"""Enrolment (SPEC §5.1): matching records become participants, set-based.

One ``INSERT … SELECT`` creates the participants (compiled filter, active condition,
unicity de-duplication) and one more per ``begin`` activity creates their first traces.
The participants created in a pass are found by id above a watermark taken under the
campaign lock, so no id list travels through Python.

Continuous enrolment: :func:`on_records_changed` is subscribed to the record services'
change notifications and enrols only the given ids, in the writing transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from nurture import audience
from nurture.campaigns.campaigns import on_campaign_started
from nurture.campaigns.domains import campaign_domain
from nurture.campaigns.models import Activity, Campaign
from nurture.campaigns.timing import add_interval
from nurture.engine.models import Participant, Trace
from nurture.engine.schedule import MSG_RECORD_DELETED, cancel_scheduled, chunks
from nurture.records import events
from nurture.records.catalog import REGISTRY

#: a pass that enrols at least this many refreshes the planner statistics (PostgreSQL)
ANALYZE_AFTER = 5_000

LISTENER_CHUNK = 5000


def _lock_campaign(session: Session, campaign_id: int) -> Campaign | None:
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def _unicity_column(model: str, unicity_field: str) -> Any:
    mdef = REGISTRY.get(model)
    if unicity_field == "id":
        return None
    fdef = mdef.field(unicity_field)
    if fdef.type == "many2one" and fdef.fk_column:
        return getattr(mdef.orm, fdef.fk_column)
    return mdef.attr(unicity_field)


def candidates(
    campaign: Campaign, *, now: datetime, ids: Sequence[int] | None = None
) -> Any:
    """SELECT (res_id, unicity_value) of the records to enrol now, after de-duplication."""
    mdef = REGISTRY.target(campaign.model)
    orm = mdef.orm
    condition = audience.compile_domain(campaign.model, campaign_domain(campaign), now=now)
    active = audience.active_condition(campaign.model, include_archived=campaign.include_archived)
    already = exists().where(
        Participant.campaign_id == campaign.id,
        Participant.res_id == orm.id,
        Participant.is_test == false(),
    )
    where: list[Any] = [condition, active, ~already]
    if ids is not None:
        where.append(orm.id.in_(list(ids)))
    column = _unicity_column(campaign.model, campaign.unicity_field)
    if column is None:
        return select(orm.id.label("res_id"), null().label("uval")).where(*where)
    value = column if isinstance(column.type, String) else cast(column, String(254))
    empty = or_(value.is_(None), value == "")
    seen = exists().where(
        Participant.campaign_id == campaign.id,
        Participant.unicity_value == value,
        Participant.is_test == false(),
    )
    where.append(or_(empty, ~seen))
    ranked = (
        select(
            orm.id.label("res_id"),
            value.label("uval"),
            func.row_number().over(partition_by=value, order_by=orm.id).label("rn"),
        )
        .where(*where)
        .subquery("ranked")
    )
    rempty = or_(ranked.c.uval.is_(None), ranked.c.uval == "")
    return select(
        ranked.c.res_id,
        case((rempty, null()), else_=ranked.c.uval).label("uval"),
    ).where(or_(ranked.c.rn == 1, rempty))


def enrol_campaign(
    session: Session,
    *,
    campaign_id: int,
    now: datetime,
    ids: Sequence[int] | None = None,
) -> int:
    """Enrol the matching records of a running campaign (only ``ids`` when given).

    Returns the number of new participants. A full pass (``ids`` None) also marks the
    participants of deleted records ``removed`` and stamps ``last_sync_at``.
    """
    campaign = _lock_campaign(session, campaign_id)
    if campaign is None or campaign.state != "running":
        return 0
    if ids is None:
        mark_removed(session, campaign_id=campaign.id, now=now)
    begins = list(
        session.scalars(
            select(Activity)
            .where(Activity.campaign_id == campaign.id, Activity.trigger_type == "begin")
            .order_by(Activity.id)
        )
    )
    watermark = int(session.scalar(select(func.coalesce(func.max(Participant.id), 0))) or 0)
    source = candidates(campaign, now=now, ids=ids).subquery("cand")
    state = "running" if begins else "completed"
    rows = select(
        literal(campaign.id),
        literal(campaign.model),
        source.c.res_id,
        source.c.uval,
        literal(state),
        false(),
        literal(now, Participant.created_at.type),
        literal(now, Participant.updated_at.type),
    )
    session.execute(
        insert(Participant).from_select(
            [
                "campaign_id",
                "model",
                "res_id",
                "unicity_value",
                "state",
                "is_test",
                "created_at",
                "updated_at",
            ],
            rows,
        )
    )
    new_ones = and_(
        Participant.id > watermark,
        Participant.campaign_id == campaign.id,
        Participant.is_test == false(),
    )
    # (rowcount of INSERT … SELECT is not reported by every driver)
    created = int(session.scalar(select(func.count()).where(new_ones)) or 0)
    if created:
        for activity in begins:
            begin_traces(
                session,
                campaign_id=campaign.id,
                activity=activity,
                now=now,
                participant_filter=new_ones,
            )
        if created >= ANALYZE_AFTER and session.get_bind().dialect.name == "postgresql":
            # A bulk enrolment can grow these tables many times over within a minute, before
            # autovacuum re-samples them: with stale statistics the planner takes them for
            # small and scans them whole for each batch the engine then runs.
            session.execute(text("ANALYZE participant, trace"))
    if ids is None:
        campaign.last_sync_at = now
    session.flush()
    return created


def begin_traces(
    session: Session,
    *,
    campaign_id: int,
    activity: Activity,
    now: datetime,
    participant_filter: Any,
) -> None:
    """One trace per selected participant for a ``begin`` activity, at now + interval."""
    date = add_interval(now, activity.interval_number, activity.interval_unit)
    source = select(
        literal(campaign_id),
        Participant.id,
        literal(activity.id),
        Participant.res_id,
        Participant.is_test,
        literal("scheduled"),
        literal(date, Trace.schedule_date.type),
        literal(now, Trace.created_at.type),
    ).where(participant_filter)
    session.execute(
        insert(Trace).from_select(
            [
                "campaign_id",
                "participant_id",
                "activity_id",
                "res_id",
                "is_test",
                "state",
                "schedule_date",
                "created_at",
            ],
            source,
        )
    )


def mark_removed(
    session: Session,
    *,
    now: datetime,
    campaign_id: int | None = None,
    model: str | None = None,
    res_ids: Sequence[int] | None = None,
) -> int:
    """Participants whose record is gone become ``removed``; their scheduled traces are canceled.

    With ``res_ids`` (the deletion listener) the records are about to be deleted; without,
    the participants whose record no longer exists are found set-based.
    """
    conditions: list[Any] = [Participant.state != "removed"]
    if campaign_id is not None:
        conditions.append(Participant.campaign_id == campaign_id)
        campaign = session.get(Campaign, campaign_id)
        model = campaign.model if campaign else model
    if model is not None:
        conditions.append(Participant.model == model)
    if res_ids is not None:
        conditions.append(Participant.res_id.in_(list(res_ids)))
    else:
        assert model is not None
        orm = REGISTRY.get(model).orm
        conditions.append(~exists().where(orm.id == Participant.res_id))
    ids = list(session.scalars(select(Participant.id).where(*conditions)))
    if not ids:
        return 0
    for part in chunks(ids):
        session.execute(
            update(Participant)
            .where(Participant.id.in_(part))
            .values(state="removed", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        cancel_scheduled(
            session,
            trace_filter=Trace.participant_id.in_(part),
            message=MSG_RECORD_DELETED,
            now=now,
        )
    return len(ids)


def sync_campaigns(
    session_factory: Any, *, now: datetime, full: bool, model: str | None = None
) -> int:
    """Enrol for every running campaign (``full``) or only those awaiting their first pass
    (only the campaigns on ``model`` when given).

    ``session_factory`` is a :class:`nurture.db.Database`; each campaign gets its own
    transaction so one large campaign does not hold the others.
    """
    with session_factory.read() as session:
        stmt = select(Campaign.id).where(Campaign.state == "running")
        if not full:
            stmt = stmt.where(Campaign.last_sync_at.is_(None))
        if model is not None:
            stmt = stmt.where(Campaign.model == model)
        campaign_ids = list(session.scalars(stmt.order_by(Campaign.id)))
    total = 0
    for campaign_id in campaign_ids:
        with session_factory.transaction() as session:
            total += enrol_campaign(session, campaign_id=campaign_id, now=now)
    return total


@events.on_changed
def on_records_changed(session: Session, model: str, ids: Sequence[int], now: datetime) -> None:
    """Continuous enrolment: check only the changed records against running campaigns."""
    campaign_ids = list(
        session.scalars(
            select(Campaign.id).where(Campaign.model == model, Campaign.state == "running")
        )
    )
    for campaign_id in campaign_ids:
        for part in chunks(list(ids), LISTENER_CHUNK):
            enrol_campaign(session, campaign_id=campaign_id, now=now, ids=part)


@events.on_deleted
def on_records_deleted(session: Session, model: str, ids: Sequence[int], now: datetime) -> None:
    """Records about to be deleted: their participants are removed, scheduled traces canceled."""
    for part in chunks(list(ids), LISTENER_CHUNK):
        mark_removed(session, now=now, model=model, res_ids=part)


@on_campaign_started
def on_started(session: Session, campaign: Campaign, now: datetime) -> None:
    """``POST /campaigns/{id}/start`` (and the CLI) enrol at once, in the starting transaction."""
    enrol_campaign(session, campaign_id=campaign.id, now=now)
