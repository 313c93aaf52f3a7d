"""Builders for server action tests: a campaign, an action activity and real traces."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nurture.actions import validate_action
from nurture.actions.executor import run_server_action
from nurture.campaigns.models import Activity, Campaign, ServerAction
from nurture.engine.executors import ExecutionBatch, Outcome
from nurture.engine.models import Participant, Trace
from nurture.records import service as records

T0 = datetime(2026, 1, 5, 9, 0, 0)


def save_action(
    s: Session, model: str, action_type: str, payload: Mapping[str, Any], *, name: str = "Act", now: datetime = T0
) -> ServerAction:
    """A server action row with a validated payload (what the campaign service will store)."""
    clean = validate_action(model, action_type, dict(payload))
    action = ServerAction(
        name=name, model=model, action_type=action_type, payload=json.dumps(clean), created_at=now
    )
    s.add(action)
    s.flush()
    return action


@dataclass
class Run:
    outcomes: dict[int, Outcome]
    trace_of: dict[int, int]  # res_id -> trace id

    def of(self, res_id: int) -> Outcome | None:
        return self.outcomes.get(self.trace_of[res_id])


def run_action(
    s: Session,
    action: ServerAction,
    res_ids: Iterable[int],
    *,
    now: datetime = T0,
    responsible_id: int | None = None,
    campaign_name: str = "Camp",
) -> Run:
    """Run ``action`` on ``res_ids`` through the engine's ``action`` executor entry point."""
    campaign = Campaign(
        name=campaign_name, model=action.model, domain="[]", unicity_field="id",
        include_archived=False, responsible_id=responsible_id, state="draft",
        event_window_days=30, workflow_modified=False, created_at=now, updated_at=now,
    )
    s.add(campaign)
    s.flush()
    activity = Activity(
        campaign_id=campaign.id, name="Do it", activity_type="action",
        server_action_id=action.id, trigger_type="begin", interval_number=0,
        interval_unit="hours", expiry_unit="hours", domain="[]", pending_new=False,
        pending_redate=False, created_at=now, updated_at=now,
    )
    s.add(activity)
    s.flush()
    trace_of: dict[int, int] = {}
    for res_id in res_ids:
        participant = Participant(
            campaign_id=campaign.id, model=action.model, res_id=res_id, state="running",
            is_test=False, created_at=now, updated_at=now,
        )
        s.add(participant)
        s.flush()
        trace = Trace(
            campaign_id=campaign.id, participant_id=participant.id, activity_id=activity.id,
            res_id=res_id, is_test=False, state="processed", schedule_date=now, created_at=now,
        )
        s.add(trace)
        s.flush()
        trace_of[res_id] = trace.id
    batch = ExecutionBatch(
        session=s, campaign=campaign, activity=activity,
        trace_filter=Trace.id.in_(list(trace_of.values())), now=now,
    )
    with s.begin_nested():
        outcomes = dict(run_server_action(batch))
    return Run(outcomes, trace_of)


def contact(s: Session, name: str = "Ann", *, now: datetime = T0, **values: Any) -> int:
    return records.create_record(session=s, model="contact", values={"name": name, **values}, now=now)


def user(s: Session, login: str, *, active: bool = True, now: datetime = T0) -> int:
    uid = records.create_record(
        session=s, model="user", values={"login": login, "name": login.title()}, now=now
    )
    if not active:
        records.update_record(session=s, model="user", record_id=uid, values={"active": False}, now=now)
    return uid
