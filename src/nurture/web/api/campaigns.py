"""Campaigns and their activity trees: ``/api/v1/campaigns`` (SPEC §3, §4).

Start, stop, update and delete are written to the audit log with the caller and address.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture import audience
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns, domains
from nurture.campaigns.activity_types import activity_types
from nurture.campaigns.models import Activity, Campaign
from nurture.channels.sms import service as sms_service
from nurture.engine import campaign_changes
from nurture.errors import NotFound
from nurture.records.catalog import REGISTRY
from nurture.reporting import campaign_stats
from nurture.reporting.activity_stats import (
    MESSAGE_EVENTS,
    TRACE_COUNTS,
    ActivityFigures,
    activity_counts,
)
from nurture.web.api.common import (
    AUTH_ERRORS,
    CONFLICT,
    MAX_ID,
    NOT_FOUND,
    Cursor,
    Id,
    Limit,
    Now,
    Offset,
    Page,
    ReadSession,
    Timestamp,
    WriteSession,
    enum_of,
    paginate,
)
from nurture.web.api.users import audit
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(prefix="/campaigns", tags=["campaigns"], responses={**AUTH_ERRORS, **NOT_FOUND})
Reader = Annotated[CurrentUser, Depends(require("campaigns.read"))]
Writer = Annotated[CurrentUser, Depends(require("campaigns.write"))]

State = Literal["draft", "running", "stopped"]
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
Domain = list[Any] | str | None
DOMAIN_DOC = (
    "Filter as a domain (JSON list, or text: JSON or Odoo Python-literal); "
    "empty or null: all records."
)
TARGETS = [m.name for m in REGISTRY.targets()]
OptionalId = Annotated[int | None, Field(default=None, ge=1, le=MAX_ID)]


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


class CampaignOut(BaseModel):
    id: int
    name: str
    model: str
    domain: list[Any]
    unicity_field: str
    include_archived: bool
    responsible_id: int | None
    state: str
    event_window_days: int
    workflow_modified: bool
    started_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class CampaignDetail(CampaignOut):
    activities: list[ActivityOut]


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    model: str = Field(json_schema_extra=enum_of(TARGETS), description="Target model.")
    domain: Domain = Field(default=None, description=DOMAIN_DOC)
    unicity_field: str | None = Field(
        default=None, max_length=64, description="Default: email where the model has one."
    )
    include_archived: bool = False
    responsible_id: OptionalId = None
    event_window_days: int = Field(default=30, ge=1, le=3650)


class CampaignPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    model: str | None = Field(default=None, json_schema_extra=enum_of(TARGETS))
    domain: Domain = Field(default=None, description=DOMAIN_DOC)
    unicity_field: str | None = Field(default=None, max_length=64)
    include_archived: bool | None = None
    responsible_id: OptionalId = None
    event_window_days: int | None = Field(default=None, ge=1, le=3650)


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


class FilterCount(BaseModel):
    domain: list[Any] = Field(description="The filter (for an activity: the applied filter).")
    count: int = Field(description="Records matching it now (#records).")


class TraceCounts(BaseModel):
    scheduled: int = 0
    processed: int = 0
    rejected: int = 0
    canceled: int = 0
    error: int = 0


class ActivityMetrics(BaseModel):
    activity_id: int
    name: str
    activity_type: str
    traces: TraceCounts
    sent: int
    opened: int
    clicked: int
    replied: int
    bounced: int
    delivered: int | None = Field(
        default=None,
        description="SMS activities: messages the provider reported delivered (status "
        "callbacks); null for other activity types.",
    )


class SmsFigures(BaseModel):
    """The campaign's SMS activities together (tests excluded)."""

    sent: int = 0
    delivered: int = 0
    clicked: int = 0
    bounced: int = 0


class ParticipantCounts(BaseModel):
    running: int = 0
    completed: int = 0
    removed: int = 0


class CampaignMetrics(BaseModel):
    campaign_id: int
    participants: ParticipantCounts = Field(description="Real participants (tests excluded).")
    tests: int = Field(description="Test participants.")
    activities: list[ActivityMetrics]
    sms: SmsFigures = Field(description="Sent, delivered, clicked and bounced SMS messages.")


# --------------------------------------------------------------------------- conversions


def _domain(text: str | None) -> list[Any]:
    value = json.loads(text or "[]")
    return list(value) if isinstance(value, list) else []


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
        domain=_domain(activity.domain),
        server_action_id=activity.server_action_id,
        pending_new=activity.pending_new,
        pending_redate=activity.pending_redate,
        created_at=activity.created_at,
        updated_at=activity.updated_at,
    )


def _fields(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "model": campaign.model,
        "domain": _domain(campaign.domain),
        "unicity_field": campaign.unicity_field,
        "include_archived": campaign.include_archived,
        "responsible_id": campaign.responsible_id,
        "state": campaign.state,
        "event_window_days": campaign.event_window_days,
        "workflow_modified": campaign.workflow_modified,
        "started_at": campaign.started_at,
        "created_at": campaign.created_at,
        "updated_at": campaign.updated_at,
    }


def campaign_out(campaign: Campaign) -> CampaignOut:
    return CampaignOut(**_fields(campaign))


def campaign_detail(session: Session, campaign: Campaign) -> CampaignDetail:
    session.refresh(campaign)
    activities = session.scalars(
        select(Activity).where(Activity.campaign_id == campaign.id).order_by(Activity.id)
    ).all()
    return CampaignDetail(**_fields(campaign), activities=[activity_out(a) for a in activities])


def _campaign_activity(session: Session, campaign_id: int, activity_id: int) -> Activity:
    campaigns.get_campaign(session=session, campaign_id=campaign_id)
    activity = session.get(Activity, activity_id)
    if activity is None or activity.campaign_id != campaign_id:
        raise NotFound(
            f"activity {activity_id} does not exist in campaign {campaign_id}", field="activity_id"
        )
    return activity


def _given(body: BaseModel) -> dict[str, Any]:
    """The fields the client sent (an explicit null included)."""
    return {name: getattr(body, name) for name in body.model_fields_set}


# --------------------------------------------------------------------------- campaigns


@router.get("", summary="List campaigns")
def list_campaigns(
    _user: Reader,
    session: ReadSession,
    state: Annotated[State | None, Query(description="Only campaigns in this state.")] = None,
    model: Annotated[
        str | None, Query(max_length=64, json_schema_extra=enum_of(TARGETS))
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="Name contains (any case).")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[CampaignOut]:
    stmt = select(Campaign)
    if state is not None:
        stmt = stmt.where(Campaign.state == state)
    if model is not None:
        stmt = stmt.where(Campaign.model == model)
    if q:
        stmt = stmt.where(func.lower(Campaign.name).contains(q.lower(), autoescape=True))
    rows, next_cursor = paginate(session, stmt, Campaign.id, limit=limit, cursor=cursor, offset=offset)
    return Page[CampaignOut](items=[campaign_out(c) for c in rows], next_cursor=next_cursor)


@router.post("", status_code=201, summary="Create a campaign (draft)")
def create_campaign(
    user: Writer, session: WriteSession, now: Now, body: CampaignIn, request: Request
) -> CampaignDetail:
    campaign = campaigns.create_campaign(
        session=session,
        now=now,
        name=body.name,
        model=body.model,
        domain=body.domain,
        unicity_field=body.unicity_field,
        include_archived=body.include_archived,
        responsible_id=body.responsible_id,
        event_window_days=body.event_window_days,
    )
    audit(session, user, "campaign.create", campaign, {"name": campaign.name}, now=now, request=request)
    return campaign_detail(session, campaign)


@router.get("/{campaign_id}", summary="Get a campaign with its activities")
def get_campaign(campaign_id: Id, _user: Reader, session: ReadSession) -> CampaignDetail:
    return campaign_detail(session, campaigns.get_campaign(session=session, campaign_id=campaign_id))


@router.patch("/{campaign_id}", summary="Edit a campaign", responses=CONFLICT)
def patch_campaign(
    campaign_id: Id, _user: Writer, session: WriteSession, now: Now, body: CampaignPatch
) -> CampaignDetail:
    changes = _given(body)
    for required in ("name", "model", "include_archived", "event_window_days"):
        if changes.get(required, "") is None:
            changes.pop(required)
    campaign = campaign_changes.edit_campaign(session=session, now=now, campaign_id=campaign_id, **changes)
    return campaign_detail(session, campaign)


@router.delete("/{campaign_id}", status_code=204, summary="Delete a campaign and its traces")
def delete_campaign(
    campaign_id: Id, user: Writer, session: WriteSession, now: Now, request: Request
) -> Response:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    name = campaign.name
    campaign_changes.delete_campaign(session=session, now=now, campaign_id=campaign_id)
    audit(session, user, "campaign.delete", ("campaign", campaign_id), {"name": name}, now=now, request=request)
    return Response(status_code=204)


def _transition(
    verb: str, summary: str
) -> Any:
    operations = {
        "start": campaigns.start_campaign,
        "stop": campaigns.stop_campaign,
        "update": campaign_changes.update_campaign,
    }
    operation = operations[verb]

    def route(
        campaign_id: Id, user: Writer, session: WriteSession, now: Now, request: Request
    ) -> CampaignDetail:
        campaign = operation(session=session, now=now, campaign_id=campaign_id)
        audit(
            session,
            user,
            f"campaign.{verb}",
            campaign,
            {"name": campaign.name, "state": campaign.state},
            now=now,
            request=request,
        )
        return campaign_detail(session, campaign)

    route.__name__ = f"{verb}_campaign"
    router.post(f"/{{campaign_id}}/{verb}", summary=summary, responses=CONFLICT)(route)
    return route


_transition("start", "Start (or restart) a campaign; matching records are enrolled at once")
_transition("stop", "Stop a running campaign")
_transition("update", "Apply workflow changes to existing participants (*Update*)")


@router.post("/{campaign_id}/duplicate", status_code=201, summary="Duplicate a campaign")
def duplicate_campaign(
    campaign_id: Id, user: Writer, session: WriteSession, now: Now, request: Request
) -> CampaignDetail:
    copy = campaigns.duplicate_campaign(session=session, now=now, campaign_id=campaign_id)
    audit(session, user, "campaign.duplicate", copy, {"from": campaign_id}, now=now, request=request)
    return campaign_detail(session, copy)


@router.get("/{campaign_id}/count", summary="#records of the campaign filter")
def campaign_count(campaign_id: Id, _user: Reader, session: ReadSession, now: Now) -> FilterCount:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    count = campaigns.campaign_count(session, campaign_id=campaign_id, now=now)
    return FilterCount(domain=domains.campaign_domain(campaign), count=count)


def _activity_metrics(
    activity: Activity, figures: ActivityFigures, delivered: int
) -> ActivityMetrics:
    return ActivityMetrics(
        activity_id=activity.id,
        name=activity.name,
        activity_type=activity.activity_type,
        traces=TraceCounts(**{state: getattr(figures, state) for state in TRACE_COUNTS}),
        delivered=delivered if activity.activity_type == "sms" else None,
        **{event: figures.count(event) for event in MESSAGE_EVENTS},
    )


@router.get("/{campaign_id}/metrics", summary="Participants and per-activity figures")
def campaign_metrics(campaign_id: Id, _user: Reader, session: ReadSession) -> CampaignMetrics:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    by_state = campaign_stats.participant_counts(session, campaign_id=campaign.id)
    participants = ParticipantCounts(
        running=by_state.running, completed=by_state.completed, removed=by_state.removed
    )
    tests = by_state.tests
    counts = activity_counts(session=session, campaign_id=campaign.id)
    activities = session.scalars(
        select(Activity).where(Activity.campaign_id == campaign.id).order_by(Activity.id)
    ).all()
    delivered = sms_service.delivered_counts(session=session, campaign_id=campaign.id)
    figures = [
        _activity_metrics(
            a, counts.get(a.id) or ActivityFigures(activity_id=a.id), delivered.get(a.id, 0)
        )
        for a in activities
    ]
    sms = SmsFigures()
    for m in figures:
        if m.activity_type == "sms":
            sms.sent += m.sent
            sms.delivered += m.delivered or 0
            sms.clicked += m.clicked
            sms.bounced += m.bounced
    return CampaignMetrics(
        campaign_id=campaign.id,
        participants=participants,
        tests=tests,
        activities=figures,
        sms=sms,
    )


# --------------------------------------------------------------------------- activities


@router.get("/{campaign_id}/activities", summary="The activities of a campaign")
def list_activities(campaign_id: Id, _user: Reader, session: ReadSession) -> list[ActivityOut]:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    return campaign_detail(session, campaign).activities


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
    return activity_out(_campaign_activity(session, campaign_id, activity_id))


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
    _campaign_activity(session, campaign_id, activity_id)
    changes = _given(body)
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
    _campaign_activity(session, campaign_id, activity_id)
    campaign_changes.delete_activity(session=session, now=now, activity_id=activity_id)
    return Response(status_code=204)


@router.get(
    "/{campaign_id}/activities/{activity_id}/applied-filter",
    summary="The applied filter of an activity and its #records",
)
def applied_filter(
    campaign_id: Id, activity_id: Id, _user: Reader, session: ReadSession, now: Now
) -> FilterCount:
    activity = _campaign_activity(session, campaign_id, activity_id)
    domain = domains.applied_domain(session, activity=activity)
    count = activity_service.applied_count(session, activity_id=activity_id, now=now)
    return FilterCount(domain=audience.parse_domain(domain), count=count)
