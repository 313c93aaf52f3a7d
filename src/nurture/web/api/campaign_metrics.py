"""The figures of a campaign: ``/api/v1/campaigns/{id}/metrics`` (SPEC §9).

Participants by state and, per activity, its traces by state and its message events; the
counting is :mod:`nurture.reporting`'s.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from nurture.campaigns import campaigns
from nurture.campaigns.models import Activity
from nurture.channels.sms import service as sms_service
from nurture.reporting import campaign_stats
from nurture.reporting.activity_stats import (
    MESSAGE_EVENTS,
    TRACE_COUNTS,
    ActivityFigures,
    activity_counts,
)
from nurture.web.api.activities import campaign_activities
from nurture.web.api.common import AUTH_ERRORS, NOT_FOUND, Id, ReadSession
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(prefix="/campaigns", tags=["campaigns"], responses={**AUTH_ERRORS, **NOT_FOUND})
Reader = Annotated[CurrentUser, Depends(require("campaigns.read"))]


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
    activities = campaign_activities(session, campaign.id)
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
