"""Web UI: the workflow tree of a campaign and the activity dialog (issue 14, screens 5–6).

The campaign form loads the tree as a fragment: ``GET /campaigns/{id}/workflow``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from nurture.campaigns import service as campaigns
from nurture.web.security import csrf_protect
from nurture.web.ui.render import UiReadSession, UiUser, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)


@router.get("/campaigns/{campaign_id}/workflow")
def workflow_fragment(
    request: Request, user: UiUser, session: UiReadSession, campaign_id: int
) -> Response:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    return render(request, "ui/workflow/_tree.html", {"campaign": campaign})
