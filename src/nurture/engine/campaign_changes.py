"""Campaign and activity changes whose rules involve participants and traces (SPEC §3, §4):
edit and delete a campaign or an activity, and *Update* (apply workflow changes to the
existing participants).

Every function is keyword-only, takes the ``session`` it writes in and ``now`` (naive UTC),
and raises :mod:`nurture.errors` naming the field at fault; nothing is written on error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from nurture.campaigns.activities import (
    campaign_started,
    check_children_accept,
    check_server_action,
    check_tree,
    descendant_ids,
    get_activity,
)
from nurture.campaigns.activity_types import activity_types
from nurture.campaigns.campaigns import check_unicity, get_campaign
from nurture.campaigns.checks import (
    UNSET,
    check_name,
    check_unit,
    check_user,
    check_whole,
    target_model,
)
from nurture.campaigns.domains import clean_domain
from nurture.campaigns.models import Activity, Campaign
from nurture.engine.models import Participant, Trace
from nurture.engine.schedule import apply_workflow_changes, complete_participants
from nurture.errors import Conflict, ValidationError


def edit_campaign(
    *,
    session: Session,
    now: datetime,
    campaign_id: int,
    name: str = UNSET,
    model: str = UNSET,
    domain: Any = UNSET,
    unicity_field: str = UNSET,
    include_archived: bool = UNSET,
    responsible_id: int | None = UNSET,
    event_window_days: int = UNSET,
) -> Campaign:
    """Change a campaign's fields; only the ones passed are touched."""
    campaign = get_campaign(session=session, campaign_id=campaign_id)
    if name is not UNSET:
        campaign.name = check_name(name)
    if model is not UNSET and model != campaign.model:
        mdef = target_model(model)
        has_participants = session.scalar(
            select(Participant.id).where(Participant.campaign_id == campaign.id).limit(1)
        )
        if campaign.state != "draft" or has_participants:
            raise Conflict(
                "the target model cannot change once the campaign has started", field="model"
            )
        if campaign.activities:
            raise Conflict("remove the activities before changing the target model", field="model")
        campaign.model = model
        campaign.unicity_field = mdef.default_unicity_field
        if domain is UNSET:
            campaign.domain = "[]"
    mdef = target_model(campaign.model)
    if domain is not UNSET:
        campaign.domain = clean_domain(campaign.model, domain, "domain")
    if unicity_field is not UNSET:
        new_unicity = check_unicity(mdef, unicity_field or mdef.default_unicity_field)
        if new_unicity != campaign.unicity_field:
            enrolled = session.scalar(
                select(Participant.id)
                .where(Participant.campaign_id == campaign.id, Participant.is_test.is_(False))
                .limit(1)
            )
            if enrolled:
                raise Conflict(
                    "the unicity field cannot change once records are enrolled",
                    field="unicity_field",
                )
        campaign.unicity_field = new_unicity
    if include_archived is not UNSET:
        campaign.include_archived = bool(include_archived)
    if responsible_id is not UNSET:
        campaign.responsible_id = check_user(session, responsible_id)
    if event_window_days is not UNSET:
        window = check_whole(event_window_days, "event_window_days")
        if not window:
            raise ValidationError("event window must be at least 1 day", field="event_window_days")
        campaign.event_window_days = window
    campaign.updated_at = now
    session.flush()
    return campaign


def delete_campaign(*, session: Session, now: datetime, campaign_id: int) -> None:
    """Delete a campaign with its activities, participants and traces."""
    campaign = get_campaign(session=session, campaign_id=campaign_id)
    # Explicit deletes in dependency order: fast on large campaigns, no ORM loading.
    session.execute(delete(Trace).where(Trace.campaign_id == campaign.id))
    session.execute(delete(Participant).where(Participant.campaign_id == campaign.id))
    session.execute(
        update(Activity).where(Activity.campaign_id == campaign.id).values(parent_id=None)
    )
    session.execute(delete(Activity).where(Activity.campaign_id == campaign.id))
    session.execute(delete(Campaign).where(Campaign.id == campaign.id))
    session.expunge(campaign)


def update_campaign(*, session: Session, now: datetime, campaign_id: int) -> Campaign:
    """*Update*: apply workflow changes to existing participants (SPEC §3)."""
    campaign = get_campaign(session=session, campaign_id=campaign_id, for_update=True)
    apply_workflow_changes(session, campaign=campaign, now=now)
    campaign.workflow_modified = False
    campaign.updated_at = now
    session.flush()
    return campaign


def edit_activity(
    *,
    session: Session,
    now: datetime,
    activity_id: int,
    name: str = UNSET,
    activity_type: str = UNSET,
    trigger_type: str = UNSET,
    parent_id: int | None = UNSET,
    interval_number: int = UNSET,
    interval_unit: str = UNSET,
    expiry_number: int | None = UNSET,
    expiry_unit: str = UNSET,
    domain: Any = UNSET,
    server_action_id: int | None = UNSET,
) -> Activity:
    activity = get_activity(session=session, activity_id=activity_id)
    campaign = get_campaign(session=session, campaign_id=activity.campaign_id, for_update=True)
    new_type = activity.activity_type if activity_type is UNSET else activity_type
    new_trigger = activity.trigger_type if trigger_type is UNSET else trigger_type
    new_parent = activity.parent_id if parent_id is UNSET else parent_id
    if new_trigger == "begin" and parent_id is UNSET:
        new_parent = None
    if new_type not in activity_types():
        raise ValidationError(f"unknown activity type {new_type!r}", field="activity_type")
    if (new_trigger, new_parent, new_type) != (
        activity.trigger_type,
        activity.parent_id,
        activity.activity_type,
    ):
        has_traces = session.scalar(
            select(Trace.id).where(Trace.activity_id == activity.id, Trace.is_test.is_(False)).limit(1)
        )
        if has_traces:
            field = "activity_type" if new_type != activity.activity_type else "trigger_type"
            raise Conflict(
                "the type, trigger and parent of an activity cannot change once it has traces; "
                "add a new activity instead",
                field=field,
            )
    check_tree(
        session,
        campaign=campaign,
        activity_id=activity.id,
        activity_type=new_type,
        trigger_type=new_trigger,
        parent_id=new_parent,
    )
    if new_type != activity.activity_type:
        check_children_accept(session, activity=activity, activity_type=new_type)
    started = campaign_started(campaign)
    if name is not UNSET:
        activity.name = check_name(name)
    if new_type != activity.activity_type:
        activity.activity_type = new_type
        if new_type != "action":
            activity.server_action_id = None
    activity.trigger_type = new_trigger
    activity.parent_id = new_parent
    changed_interval = False
    if interval_number is not UNSET:
        check_whole(interval_number, "interval_number")
        changed_interval |= interval_number != activity.interval_number
        activity.interval_number = interval_number
    if interval_unit is not UNSET:
        check_unit(interval_unit, "interval_unit")
        changed_interval |= interval_unit != activity.interval_unit
        activity.interval_unit = interval_unit
    if expiry_number is not UNSET:
        check_whole(expiry_number, "expiry_number", allow_none=True)
        activity.expiry_number = expiry_number
    if expiry_unit is not UNSET:
        check_unit(expiry_unit, "expiry_unit")
        activity.expiry_unit = expiry_unit
    if domain is not UNSET:
        activity.domain = clean_domain(campaign.model, domain, "domain")
    if server_action_id is not UNSET:
        activity.server_action_id = check_server_action(
            session, campaign, activity.activity_type, server_action_id
        )
    if started and changed_interval and not activity.pending_new:
        activity.pending_redate = True
        campaign.workflow_modified = True
    activity.updated_at = now
    campaign.updated_at = now
    session.flush()
    return activity


def delete_activity(*, session: Session, now: datetime, activity_id: int) -> None:
    """Delete an activity and its descendants; their traces go with them.

    Participants left with nothing scheduled complete at once.
    """
    activity = get_activity(session=session, activity_id=activity_id)
    campaign_id = activity.campaign_id
    ids = descendant_ids(session, activity_id=activity_id)
    participant_ids = select(Trace.participant_id).where(
        Trace.activity_id.in_(ids), Trace.state == "scheduled"
    )
    affected = list(session.scalars(participant_ids.distinct()))
    session.execute(delete(Trace).where(Trace.activity_id.in_(ids)))
    session.execute(update(Activity).where(Activity.id.in_(ids)).values(parent_id=None))
    session.execute(delete(Activity).where(Activity.id.in_(ids)))
    session.expire_all()
    if affected:
        complete_participants(
            session, now=now, participant_ids=affected, campaign_id=campaign_id
        )
