"""Campaigns: ``/api/v1/campaigns`` (SPEC §3).

Start, stop, update and delete are written to the audit log with the caller and address.
The workflow's activities have their routes in :mod:`.activities`, the figures in
:mod:`.campaign_metrics`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.campaigns import campaigns, domains
from nurture.campaigns.models import Campaign
from nurture.engine import campaign_changes
from nurture.records.catalog import REGISTRY
from nurture.web.api.activities import ActivityOut, activity_out, campaign_activities
from nurture.web.api.common import (
    AUTH_ERRORS,
    CONFLICT,
    DOMAIN_DOC,
    NOT_FOUND,
    Cursor,
    Domain,
    FilterCount,
    Id,
    Limit,
    Now,
    Offset,
    OptionalId,
    Page,
    ReadSession,
    Timestamp,
    WriteSession,
    enum_of,
    given,
    paginate,
    stored_domain,
)
from nurture.web.api.users import audit
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(prefix="/campaigns", tags=["campaigns"], responses={**AUTH_ERRORS, **NOT_FOUND})
Reader = Annotated[CurrentUser, Depends(require("campaigns.read"))]
Writer = Annotated[CurrentUser, Depends(require("campaigns.write"))]

State = Literal["draft", "running", "stopped"]
TARGETS = [m.name for m in REGISTRY.targets()]


# --------------------------------------------------------------------------- schemas


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


# --------------------------------------------------------------------------- conversions


def _fields(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "model": campaign.model,
        "domain": stored_domain(campaign.domain),
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
    activities = campaign_activities(session, campaign.id)
    return CampaignDetail(**_fields(campaign), activities=[activity_out(a) for a in activities])


# --------------------------------------------------------------------------- routes


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
    changes = given(body)
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
