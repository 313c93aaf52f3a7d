"""Activity services (SPEC §4): the activity tree of a campaign and its rules.

Every function is keyword-only, takes the ``session`` it writes in and ``now`` (naive UTC),
and raises :mod:`nurture.errors` naming the field at fault; nothing is written on error.
Editing and deleting an activity (rules on its traces) are :mod:`nurture.engine.campaign_changes`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture import audience
from nurture.campaigns.activity_types import activity_types
from nurture.campaigns.campaigns import get_campaign
from nurture.campaigns.checks import check_name, check_unit, check_whole
from nurture.campaigns.domains import applied_domain, clean_domain
from nurture.campaigns.models import TRIGGER_PARENT, Activity, Campaign, ServerAction
from nurture.errors import NotFound, ValidationError


def get_activity(*, session: Session, activity_id: int) -> Activity:
    activity = session.get(Activity, activity_id)
    if activity is None:
        raise NotFound(f"activity {activity_id} does not exist", field="activity_id")
    return activity


def check_tree(
    session: Session,
    *,
    campaign: Campaign,
    activity_id: int | None,
    activity_type: str,
    trigger_type: str,
    parent_id: int | None,
) -> None:
    if trigger_type not in TRIGGER_PARENT:
        raise ValidationError(
            f"unknown trigger {trigger_type!r} (known: {', '.join(TRIGGER_PARENT)})",
            field="trigger_type",
        )
    wanted = TRIGGER_PARENT[trigger_type]
    if wanted is None:
        if parent_id is not None:
            raise ValidationError("a 'begin' activity has no parent", field="parent_id")
        return
    if parent_id is None:
        raise ValidationError(f"trigger {trigger_type!r} needs a parent activity", field="parent_id")
    parent = session.get(Activity, parent_id)
    if parent is None or parent.campaign_id != campaign.id:
        raise ValidationError(
            f"parent activity {parent_id} is not in this campaign", field="parent_id"
        )
    if wanted != "any" and parent.activity_type != wanted:
        raise ValidationError(
            f"trigger {trigger_type!r} needs an {wanted} parent, not {parent.activity_type!r}",
            field="parent_id",
        )
    if activity_id is not None:
        # no cycles: the new parent must not be the activity itself or one of its descendants
        current: Activity | None = parent
        while current is not None:
            if current.id == activity_id:
                raise ValidationError(
                    "the parent cannot be the activity itself or one of its descendants",
                    field="parent_id",
                )
            current = session.get(Activity, current.parent_id) if current.parent_id else None


def check_children_accept(session: Session, *, activity: Activity, activity_type: str) -> None:
    """The children of ``activity`` still have a valid trigger if it becomes ``activity_type``."""
    children = session.scalars(select(Activity).where(Activity.parent_id == activity.id)).all()
    for child in children:
        wanted = TRIGGER_PARENT[child.trigger_type]
        if wanted not in (None, "any") and wanted != activity_type:
            raise ValidationError(
                f"child activity {child.name!r} triggers on {child.trigger_type!r}, which "
                f"needs an {wanted} parent",
                field="activity_type",
            )


def check_server_action(
    session: Session, campaign: Campaign, activity_type: str, server_action_id: int | None
) -> int | None:
    if server_action_id is None:
        return None
    if activity_type != "action":
        raise ValidationError(
            "a server action belongs to an activity of type 'action'", field="server_action_id"
        )
    action = session.get(ServerAction, server_action_id)
    if action is None:
        raise ValidationError(
            f"server action {server_action_id} does not exist", field="server_action_id"
        )
    if action.model != campaign.model:
        raise ValidationError(
            f"server action {action.name!r} works on {action.model}, not {campaign.model}",
            field="server_action_id",
        )
    return server_action_id


def campaign_started(campaign: Campaign) -> bool:
    return campaign.started_at is not None


def add_activity(
    *,
    session: Session,
    now: datetime,
    campaign_id: int,
    name: str,
    activity_type: str,
    trigger_type: str = "begin",
    parent_id: int | None = None,
    interval_number: int = 0,
    interval_unit: str = "hours",
    expiry_number: int | None = None,
    expiry_unit: str = "hours",
    domain: Any = None,
    server_action_id: int | None = None,
) -> Activity:
    campaign = get_campaign(session=session, campaign_id=campaign_id, for_update=True)
    known = activity_types()
    if activity_type not in known:
        raise ValidationError(
            f"unknown activity type {activity_type!r} (known: {', '.join(known)})",
            field="activity_type",
        )
    check_tree(
        session,
        campaign=campaign,
        activity_id=None,
        activity_type=activity_type,
        trigger_type=trigger_type,
        parent_id=parent_id,
    )
    check_whole(interval_number, "interval_number")
    check_unit(interval_unit, "interval_unit")
    check_whole(expiry_number, "expiry_number", allow_none=True)
    check_unit(expiry_unit, "expiry_unit")
    started = campaign_started(campaign)
    activity = Activity(
        campaign_id=campaign.id,
        name=check_name(name),
        activity_type=activity_type,
        server_action_id=check_server_action(session, campaign, activity_type, server_action_id),
        trigger_type=trigger_type,
        parent_id=parent_id,
        interval_number=interval_number,
        interval_unit=interval_unit,
        expiry_number=expiry_number,
        expiry_unit=expiry_unit,
        domain=clean_domain(campaign.model, domain, "domain"),
        pending_new=started,
        pending_redate=False,
        created_at=now,
        updated_at=now,
    )
    session.add(activity)
    if started:
        campaign.workflow_modified = True
    campaign.updated_at = now
    session.flush()
    session.refresh(campaign)
    return activity


def descendant_ids(session: Session, *, activity_id: int) -> list[int]:
    """``activity_id`` and all its descendants."""
    result = [activity_id]
    frontier = [activity_id]
    while frontier:
        children = list(session.scalars(select(Activity.id).where(Activity.parent_id.in_(frontier))))
        result.extend(children)
        frontier = children
    return result


def children_of(session: Session, *, activity_id: int) -> list[Activity]:
    return list(
        session.scalars(
            select(Activity).where(Activity.parent_id == activity_id).order_by(Activity.id)
        )
    )


def applied_count(session: Session, *, activity_id: int, now: datetime) -> int:
    """``#records`` of an activity's applied filter (live count)."""
    activity = get_activity(session=session, activity_id=activity_id)
    campaign = activity.campaign
    return audience.count_matching(
        session,
        campaign.model,
        applied_domain(session, activity=activity),
        now=now,
        include_archived=campaign.include_archived,
    )


def begin_activities(session: Session, *, model: str) -> list[int]:
    """The first steps (trigger ``begin``) of the running campaigns on ``model``."""
    return list(
        session.scalars(
            select(Activity.id)
            .join(Campaign, Campaign.id == Activity.campaign_id)
            .where(
                Campaign.model == model,
                Campaign.state == "running",
                Activity.trigger_type == "begin",
            )
        )
    )
