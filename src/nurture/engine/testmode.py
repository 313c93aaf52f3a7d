"""Test mode (SPEC §5, "Test mode"): run a campaign's workflow by hand on one record.

A test participant is an ordinary participant flagged ``is_test``: the workers never run
its traces (the marketer presses *Run*), and it never counts in metrics or de-duplication.
The campaign may be in draft.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.audience import count_matching
from nurture.campaigns.campaigns import get_campaign
from nurture.campaigns.domains import campaign_domain
from nurture.campaigns.models import Activity
from nurture.engine.enrol import begin_traces
from nurture.engine.events import record_event
from nurture.engine.execute import BatchResult, new_token, process_group
from nurture.engine.models import Participant, Trace
from nurture.engine.schedule import cancel_scheduled, complete_participants
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records.catalog import REGISTRY

MSG_TEST_STOPPED = "Test stopped"


def launch_test(
    session: Session, *, campaign_id: int, res_id: int, now: datetime
) -> Participant:
    """Make a test participant for record ``res_id`` with its ``begin`` traces."""
    campaign = get_campaign(session=session, campaign_id=campaign_id)
    if not campaign.activities:
        raise ValidationError("add at least one activity before testing", field="activities")
    orm = REGISTRY.target(campaign.model).orm
    if session.get(orm, res_id) is None:
        raise ValidationError(f"{campaign.model} {res_id} does not exist", field="res_id")
    participant = Participant(
        campaign_id=campaign.id,
        model=campaign.model,
        res_id=res_id,
        unicity_value=None,
        state="running",
        is_test=True,
        created_at=now,
        updated_at=now,
    )
    session.add(participant)
    session.flush()
    begins = session.scalars(
        select(Activity)
        .where(Activity.campaign_id == campaign.id, Activity.trigger_type == "begin")
        .order_by(Activity.id)
    ).all()
    for activity in begins:
        begin_traces(
            session,
            campaign_id=campaign.id,
            activity=activity,
            now=now,
            participant_filter=Participant.id == participant.id,
        )
    complete_participants(session, now=now, participant_ids=[participant.id])
    session.refresh(participant)
    return participant


def _test_trace(session: Session, trace_id: int) -> Trace:
    trace = session.get(Trace, trace_id)
    if trace is None:
        raise NotFound(f"trace {trace_id} does not exist", field="trace_id")
    if not trace.is_test:
        raise ValidationError("only the steps of a test can be run by hand", field="trace_id")
    return trace


def run_step(session: Session, *, trace_id: int, now: datetime) -> BatchResult:
    """*Run*: execute a scheduled test step now, ignoring its delay; its children appear."""
    trace = _test_trace(session, trace_id)
    if trace.state != "scheduled":
        raise Conflict(f"this step is already {trace.state}", field="trace_id")
    token = new_token("test")
    trace.claimed_by = token
    session.flush()
    result = process_group(
        session,
        activity_id=trace.activity_id,
        trace_ids=[trace.id],
        token=token,
        now=now,
        check_expiry=False,
    )
    session.expire_all()
    return result


def simulate_event(session: Session, *, trace_id: int, event: str, now: datetime) -> int:
    """Simulate the recipient opening, clicking, replying to or bouncing a test message."""
    trace = _test_trace(session, trace_id)
    if trace.state != "processed":
        raise Conflict("the message of this step has not been sent yet", field="trace_id")
    return record_event(session, trace_id=trace_id, event=event, now=now)


def stop_test(session: Session, *, participant_id: int, now: datetime) -> Participant:
    """End a test: its scheduled steps are canceled and it is ``completed``."""
    participant = session.get(Participant, participant_id)
    if participant is None or not participant.is_test:
        raise NotFound(f"test {participant_id} does not exist", field="participant_id")
    cancel_scheduled(
        session,
        trace_filter=Trace.participant_id == participant.id,
        message=MSG_TEST_STOPPED,
        now=now,
    )
    if participant.state == "running":
        participant.state = "completed"
        participant.updated_at = now
    session.flush()
    return participant


def get_test(session: Session, *, participant_id: int) -> Participant:
    """A test participant, or NotFound."""
    participant = session.get(Participant, participant_id)
    if participant is None or not participant.is_test:
        raise NotFound(f"test {participant_id} does not exist", field="participant_id")
    return participant


def test_participant_of(session: Session, *, trace_id: int) -> int:
    """The test participant a test step belongs to; NotFound for any other trace."""
    trace = session.get(Trace, trace_id)
    if trace is None or not trace.is_test:
        raise NotFound(f"test step {trace_id} does not exist", field="trace_id")
    return trace.participant_id


def matches_campaign_filter(session: Session, *, participant: Participant, now: datetime) -> bool:
    """Whether the test's record is in the campaign's audience now (if not, its steps will
    be rejected, as they would be for a real participant)."""
    campaign = get_campaign(session=session, campaign_id=participant.campaign_id)
    domain = [["id", "=", participant.res_id], *campaign_domain(campaign)]
    count = count_matching(
        session, campaign.model, domain, now=now, include_archived=campaign.include_archived
    )
    return count > 0
