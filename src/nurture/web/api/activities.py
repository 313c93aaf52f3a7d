"""The activities of a campaign's workflow: ``/api/v1/campaigns/{id}/activities`` (SPEC §4).

The tree rules (which trigger under which parent, intervals, filters) are the campaign
services'; these routes read and write one activity at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture import audience
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns, domains
from nurture.campaigns.activity_types import activity_types
from nurture.campaigns.models import Activity
from nurture.engine import campaign_changes
from nurture.errors import NotFound
from nurture.web.api.common import (
    AUTH_ERRORS,
    CONFLICT,
    DOMAIN_DOC,
    NOT_FOUND,
    Domain,
    FilterCount,
    Id,
    Now,
    OptionalId,
    ReadSession,
    Timestamp,
    WriteSession,
    given,
    stored_domain,
)
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(prefix="/campaigns", tags=["campaigns"], responses={**AUTH_ERRORS, **NOT_FOUND})
Reader = Annotated[CurrentUser, Depends(require("campaigns.read"))]
Writer = Annotated[CurrentUser, Depends(require("campaigns.write"))]

if TYPE_CHECKING:
    ActivityType = str
else:
    #: the built-in activity types and those of the installed channel plugins (entry points)
    ActivityType = Literal[activity_types()]
Trigger = Literal[
    "begin",
    "activity",
    "mail_open",
    "mail_not_open",
    "mail_click",
    "mail_not_click",
    "mail_reply",
    "mail_not_reply",
    "mail_bounce",
    "sms_click",
    "sms_not_click",
    "sms_bounce",
]
Unit = Literal["hours", "days", "weeks", "months"]
#: large enough for any campaign, small enough that calendar arithmetic stays in range
MAX_INTERVAL = 9999


# --------------------------------------------------------------------------- schemas


class ActivityOut(BaseModel):
    id: int
    campaign_id: int
    name: str
    activity_type: str
    trigger_type: str
    parent_id: int | None
    interval_number: int
    interval_unit: str
    expiry_number: int | None
    expiry_unit: str
    domain: list[Any]
    server_action_id: int | None
    pending_new: bool = Field(description="Added while running: *Update* creates its traces.")
    pending_redate: bool = Field(description="Interval changed while running: *Update* re-dates.")
    created_at: Timestamp
    updated_at: Timestamp


class ActivityIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    activity_type: ActivityType
    trigger_type: Trigger = "begin"
    parent_id: OptionalId = None
    interval_number: int = Field(default=0, ge=0, le=MAX_INTERVAL)
    interval_unit: Unit = "hours"
    expiry_number: int | None = Field(default=None, ge=0, le=MAX_INTERVAL)
    expiry_unit: Unit = "hours"
    domain: Domain = Field(default=None, description=DOMAIN_DOC)
    server_action_id: OptionalId = None


class ActivityPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    activity_type: ActivityType | None = None
    trigger_type: Trigger | None = None
    parent_id: OptionalId = None
    interval_number: int | None = Field(default=None, ge=0, le=MAX_INTERVAL)
    interval_unit: Unit | None = None
    expiry_number: int | None = Field(default=None, ge=0, le=MAX_INTERVAL)
    expiry_unit: Unit | None = None
    domain: Domain = Field(default=None, description=DOMAIN_DOC)
    server_action_id: OptionalId = None


# --------------------------------------------------------------------------- conversions


def activity_out(activity: Activity) -> ActivityOut:
    return ActivityOut(
        id=activity.id,
        campaign_id=activity.campaign_id,
        name=activity.name,
        activity_type=activity.activity_type,
        trigger_type=activity.trigger_type,
        parent_id=activity.parent_id,
        interval_number=activity.interval_number,
        interval_unit=activity.interval_unit,
        expiry_number=activity.expiry_number,
        expiry_unit=activity.expiry_unit,
        domain=stored_domain(activity.domain),
        server_action_id=activity.server_action_id,
        pending_new=activity.pending_new,
        pending_redate=activity.pending_redate,
        created_at=activity.created_at,
        updated_at=activity.updated_at,
    )


def campaign_activities(session: Session, campaign_id: int) -> Sequence[Activity]:
    """The activities of a campaign, in creation order."""
    return session.scalars(
        select(Activity).where(Activity.campaign_id == campaign_id).order_by(Activity.id)
    ).all()


def campaign_activity(session: Session, campaign_id: int, activity_id: int) -> Activity:
    """Activity ``activity_id`` of campaign ``campaign_id`` (404 for either missing)."""
    campaigns.get_campaign(session=session, campaign_id=campaign_id)
    activity = session.get(Activity, activity_id)
    if activity is None or activity.campaign_id != campaign_id:
        raise NotFound(
            f"activity {activity_id} does not exist in campaign {campaign_id}", field="activity_id"
        )
    return activity


# --------------------------------------------------------------------------- routes


@router.get("/{campaign_id}/activities", summary="The activities of a campaign")
def list_activities(campaign_id: Id, _user: Reader, session: ReadSession) -> list[ActivityOut]:
    campaigns.get_campaign(session=session, campaign_id=campaign_id)
    return [activity_out(a) for a in campaign_activities(session, campaign_id)]


@router.post(
    "/{campaign_id}/activities",
    status_code=201,
    summary="Add an activity to the workflow",
    responses=CONFLICT,
)
def add_activity(
    campaign_id: Id, _user: Writer, session: WriteSession, now: Now, body: ActivityIn
) -> ActivityOut:
    activity = activity_service.add_activity(
        session=session, now=now, campaign_id=campaign_id, **body.model_dump()
    )
    return activity_out(activity)


@router.get("/{campaign_id}/activities/{activity_id}", summary="Get an activity")
def get_activity(
    campaign_id: Id, activity_id: Id, _user: Reader, session: ReadSession
) -> ActivityOut:
    return activity_out(campaign_activity(session, campaign_id, activity_id))


@router.patch(
    "/{campaign_id}/activities/{activity_id}", summary="Edit an activity", responses=CONFLICT
)
def patch_activity(
    campaign_id: Id,
    activity_id: Id,
    _user: Writer,
    session: WriteSession,
    now: Now,
    body: ActivityPatch,
) -> ActivityOut:
    campaign_activity(session, campaign_id, activity_id)
    changes = given(body)
    for required in (
        "name",
        "activity_type",
        "trigger_type",
        "interval_number",
        "interval_unit",
        "expiry_unit",
    ):
        if changes.get(required, "") is None:
            changes.pop(required)
    activity = campaign_changes.edit_activity(
        session=session, now=now, activity_id=activity_id, **changes
    )
    return activity_out(activity)


@router.delete(
    "/{campaign_id}/activities/{activity_id}",
    status_code=204,
    summary="Delete an activity and its descendants",
)
def delete_activity(
    campaign_id: Id, activity_id: Id, _user: Writer, session: WriteSession, now: Now
) -> Response:
    campaign_activity(session, campaign_id, activity_id)
    campaign_changes.delete_activity(session=session, now=now, activity_id=activity_id)
    return Response(status_code=204)


@router.get(
    "/{campaign_id}/activities/{activity_id}/applied-filter",
    summary="The applied filter of an activity and its #records",
)
def applied_filter(
    campaign_id: Id, activity_id: Id, _user: Reader, session: ReadSession, now: Now
) -> FilterCount:
    activity = campaign_activity(session, campaign_id, activity_id)
    domain = domains.applied_domain(session, activity=activity)
    count = activity_service.applied_count(session, activity_id=activity_id, now=now)
    return FilterCount(domain=audience.parse_domain(domain), count=count)
