"""Campaign templates (SPEC §11): ``/api/v1/campaign-templates``.

``GET`` lists the cards; ``POST /campaign-templates/{key}/campaigns`` creates the template's
campaign in ``draft`` (with its lists, tags, server actions and email templates), the caller
as responsible. The key may also be the title (``Double Opt-in``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from nurture.campaign_templates import DEFAULT_WEBSITE, create_from_template, list_templates
from nurture.web.api.campaigns import CampaignDetail, campaign_detail
from nurture.web.api.common import AUTH_ERRORS, NOT_FOUND, Now, WriteSession
from nurture.web.api.users import audit
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(
    prefix="/campaign-templates",
    tags=["campaign templates"],
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
Reader = Annotated[CurrentUser, Depends(require("campaigns.read"))]
Writer = Annotated[CurrentUser, Depends(require("campaigns.write"))]
Key = Annotated[
    str,
    Path(min_length=1, max_length=100, description="Template key (or title), e.g. double_opt_in."),
]


class TemplateOut(BaseModel):
    key: str
    title: str
    description: str
    model: str = Field(description="Target model of the campaign it creates.")


class FromTemplateIn(BaseModel):
    name: str | None = Field(
        default=None, min_length=1, max_length=200, description="Default: the template's title."
    )
    website: str = Field(
        default=DEFAULT_WEBSITE,
        max_length=500,
        description="Where the emails' call-to-action buttons lead (an http(s) URL).",
    )


@router.get("", summary="List the campaign templates")
def list_campaign_templates(_user: Reader) -> list[TemplateOut]:
    return [
        TemplateOut(key=t.key, title=t.title, description=t.description, model=t.model)
        for t in list_templates()
    ]


@router.post(
    "/{key}/campaigns", status_code=201, summary="Create a campaign (draft) from a template"
)
def create_campaign_from_template(
    key: Key,
    user: Writer,
    session: WriteSession,
    now: Now,
    request: Request,
    body: FromTemplateIn | None = None,
) -> CampaignDetail:
    body = body or FromTemplateIn()
    campaign = create_from_template(
        session=session,
        now=now,
        key=key,
        name=body.name,
        responsible_id=user.id,
        website=body.website,
    )
    audit(
        session,
        user,
        "campaign.create",
        campaign,
        {"name": campaign.name, "template": key},
        now=now,
        request=request,
    )
    return campaign_detail(session, campaign)
