"""Web UI: the campaigns board and the campaign form (issue 14)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from nurture.campaigns.models import Campaign
from nurture.web.security import csrf_protect
from nurture.web.ui.render import UiReadSession, UiUser, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)


@router.get("/campaigns")
def board(request: Request, user: UiUser, session: UiReadSession) -> Response:
    campaigns = session.scalars(select(Campaign).order_by(Campaign.id)).all()
    return render(
        request,
        "ui/campaigns/board.html",
        {"campaigns": campaigns, "breadcrumbs": [("Campaigns", None)]},
    )
