"""Participants and traces (read-only): ``/api/v1/participants``, ``/api/v1/traces``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from nurture.engine.models import Participant, Trace
from nurture.web.api.common import (
    AUTH_ERRORS,
    MAX_ID,
    NOT_FOUND,
    Cursor,
    Id,
    Limit,
    Offset,
    Page,
    ReadSession,
    Timestamp,
    one_or_404,
    paginate,
)
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(tags=["participants and traces"], responses={**AUTH_ERRORS, **NOT_FOUND})
Reader = Annotated[CurrentUser, Depends(require("campaigns.read"))]
OptId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
IsTest = Annotated[
    bool | None, Query(description="Test participants only (true), real only (false), or both.")
]


class ParticipantOut(BaseModel):
    id: int
    campaign_id: int
    model: str
    res_id: int
    state: str
    is_test: bool
    created_at: Timestamp
    updated_at: Timestamp


class TraceOut(BaseModel):
    id: int
    campaign_id: int
    participant_id: int
    activity_id: int
    parent_id: int | None
    res_id: int
    is_test: bool
    state: str
    schedule_date: Timestamp | None
    executed_at: Timestamp | None
    state_message: str | None
    sent_at: Timestamp | None
    opened_at: Timestamp | None
    clicked_at: Timestamp | None
    replied_at: Timestamp | None
    bounced_at: Timestamp | None
    failure_reason: str | None
    created_at: Timestamp


def participant_out(p: Participant) -> ParticipantOut:
    return ParticipantOut(
        id=p.id,
        campaign_id=p.campaign_id,
        model=p.model,
        res_id=p.res_id,
        state=p.state,
        is_test=p.is_test,
        created_at=p.created_at,
        updated_at=p.updated_at,
    )


def trace_out(t: Trace) -> TraceOut:
    return TraceOut(
        id=t.id,
        campaign_id=t.campaign_id,
        participant_id=t.participant_id,
        activity_id=t.activity_id,
        parent_id=t.parent_id,
        res_id=t.res_id,
        is_test=t.is_test,
        state=t.state,
        schedule_date=t.schedule_date,
        executed_at=t.executed_at,
        state_message=t.state_message,
        sent_at=t.sent_at,
        opened_at=t.opened_at,
        clicked_at=t.clicked_at,
        replied_at=t.replied_at,
        bounced_at=t.bounced_at,
        failure_reason=t.failure_reason,
        created_at=t.created_at,
    )


@router.get("/participants", summary="List participants (by campaign, state, record)")
def list_participants(
    _user: Reader,
    session: ReadSession,
    campaign_id: OptId = None,
    state: Annotated[Literal["running", "completed", "removed"] | None, Query()] = None,
    res_id: OptId = None,
    is_test: IsTest = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[ParticipantOut]:
    stmt = select(Participant)
    if campaign_id is not None:
        stmt = stmt.where(Participant.campaign_id == campaign_id)
    if state is not None:
        stmt = stmt.where(Participant.state == state)
    if res_id is not None:
        stmt = stmt.where(Participant.res_id == res_id)
    if is_test is not None:
        stmt = stmt.where(Participant.is_test.is_(is_test))
    rows, next_cursor = paginate(
        session, stmt, Participant.id, limit=limit, cursor=cursor, offset=offset
    )
    return Page[ParticipantOut](items=[participant_out(p) for p in rows], next_cursor=next_cursor)


@router.get("/participants/{participant_id}", summary="Get a participant")
def get_participant(participant_id: Id, _user: Reader, session: ReadSession) -> ParticipantOut:
    participant = one_or_404(session.get(Participant, participant_id), "participant", participant_id)
    return participant_out(participant)


@router.get("/traces", summary="List traces (by campaign, activity, participant, state)")
def list_traces(
    _user: Reader,
    session: ReadSession,
    campaign_id: OptId = None,
    activity_id: OptId = None,
    participant_id: OptId = None,
    state: Annotated[
        Literal["scheduled", "processed", "rejected", "canceled", "error"] | None, Query()
    ] = None,
    is_test: IsTest = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[TraceOut]:
    stmt = select(Trace)
    if campaign_id is not None:
        stmt = stmt.where(Trace.campaign_id == campaign_id)
    if activity_id is not None:
        stmt = stmt.where(Trace.activity_id == activity_id)
    if participant_id is not None:
        stmt = stmt.where(Trace.participant_id == participant_id)
    if state is not None:
        stmt = stmt.where(Trace.state == state)
    if is_test is not None:
        stmt = stmt.where(Trace.is_test.is_(is_test))
    rows, next_cursor = paginate(session, stmt, Trace.id, limit=limit, cursor=cursor, offset=offset)
    return Page[TraceOut](items=[trace_out(t) for t in rows], next_cursor=next_cursor)


@router.get("/traces/{trace_id}", summary="Get a trace")
def get_trace(trace_id: Id, _user: Reader, session: ReadSession) -> TraceOut:
    return trace_out(one_or_404(session.get(Trace, trace_id), "trace", trace_id))
