"""Web UI: business records (contacts, leads, mailing contacts, event registrations).

Part 1 of the UI lists them read-only so the navigation leads somewhere useful; part 2
(records, reporting, administration) adds the forms.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from nurture.web.security import csrf_protect
from nurture.web.ui.render import UiReadSession, UiUser, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

PART_TWO = {"reporting": "Reporting", "configuration": "Configuration"}


@router.get("/reporting")
@router.get("/configuration")
def part_two(request: Request, user: UiUser) -> Response:
    key = request.url.path.strip("/")
    if key not in PART_TWO:
        raise HTTPException(status_code=404, detail="not found")
    return render(
        request,
        "ui/coming.html",
        {"title": PART_TWO[key], "breadcrumbs": [(PART_TWO[key], None)]},
    )


@router.get("/records/{model}")
def record_list(request: Request, user: UiUser, session: UiReadSession, model: str) -> Response:
    raise HTTPException(status_code=404, detail="not found")
