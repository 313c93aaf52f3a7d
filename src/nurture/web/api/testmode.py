"""Test mode (SPEC §5): launch a test on a record, run its steps, simulate events, stop it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.engine import testmode
from nurture.engine.models import Participant, Trace
from nurture.errors import NotFound
from nurture.web.api.common import (
    AUTH_ERRORS,
    CONFLICT,
    MAX_ID,
    NOT_FOUND,
    Id,
    Now,
    ReadSession,
    WriteSession,
)
from nurture.web.api.participants import ParticipantOut, TraceOut, participant_out, trace_out
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(tags=["test mode"], responses={**AUTH_ERRORS, **NOT_FOUND, **CONFLICT})
Reader = Annotated[CurrentUser, Depends(require("campaigns.read"))]
Writer = Annotated[CurrentUser, Depends(require("campaigns.write"))]
Event = Literal["open", "click", "reply", "bounce", "sms_click", "sms_bounce"]


class TestIn(BaseModel):
    res_id: int = Field(ge=1, le=MAX_ID, description="The record to test the workflow on.")


class EventIn(BaseModel):
    event: Event


class StepResult(BaseModel):
    processed: int = 0
    rejected: int = 0
    canceled: int = 0
    error: int = 0


class TestOut(BaseModel):
    participant: ParticipantOut
    traces: list[TraceOut] = Field(description="The steps so far, in creation order.")


class StepOut(TestOut):
    result: StepResult


class EventOut(TestOut):
    dated: int = Field(description="Waiting steps the event scheduled.")


def test_out(session: Session, participant: Participant) -> TestOut:
    session.refresh(participant)
    traces = session.scalars(
        select(Trace).where(Trace.participant_id == participant.id).order_by(Trace.id)
    ).all()
    return TestOut(participant=participant_out(participant), traces=[trace_out(t) for t in traces])


def _test(session: Session, participant_id: int) -> Participant:
    participant = session.get(Participant, participant_id)
    if participant is None or not participant.is_test:
        raise NotFound(f"test {participant_id} does not exist", field="participant_id")
    return participant


def _trace(session: Session, trace_id: int) -> Trace:
    trace = session.get(Trace, trace_id)
    if trace is None or not trace.is_test:
        raise NotFound(f"test step {trace_id} does not exist", field="trace_id")
    return trace


@router.post("/campaigns/{campaign_id}/tests", status_code=201, summary="Launch a test")
def launch_test(
    campaign_id: Id, _user: Writer, session: WriteSession, now: Now, body: TestIn
) -> TestOut:
    participant = testmode.launch_test(session, campaign_id=campaign_id, res_id=body.res_id, now=now)
    return test_out(session, participant)


@router.get("/tests/{participant_id}", summary="A test: its record and steps")
def get_test(participant_id: Id, _user: Reader, session: ReadSession) -> TestOut:
    return test_out(session, _test(session, participant_id))


@router.post("/tests/{participant_id}/stop", summary="Stop a test")
def stop_test(participant_id: Id, _user: Writer, session: WriteSession, now: Now) -> TestOut:
    participant = testmode.stop_test(session, participant_id=participant_id, now=now)
    return test_out(session, participant)


@router.post("/tests/steps/{trace_id}/run", summary="Run a scheduled test step now")
def run_step(trace_id: Id, _user: Writer, session: WriteSession, now: Now) -> StepOut:
    participant_id = _trace(session, trace_id).participant_id
    result = testmode.run_step(session, trace_id=trace_id, now=now)
    out = test_out(session, _test(session, participant_id))
    return StepOut(
        **out.model_dump(),
        result=StepResult(
            processed=result.processed,
            rejected=result.rejected,
            canceled=result.canceled,
            error=result.error,
        ),
    )


@router.post("/tests/steps/{trace_id}/events", summary="Simulate an event on a test message")
def simulate_event(
    trace_id: Id, _user: Writer, session: WriteSession, now: Now, body: EventIn
) -> EventOut:
    participant_id = _trace(session, trace_id).participant_id
    dated = testmode.simulate_event(session, trace_id=trace_id, event=body.event, now=now)
    out = test_out(session, _test(session, participant_id))
    return EventOut(**out.model_dump(), dated=dated)
