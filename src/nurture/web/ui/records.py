"""Web UI: business records (contacts, leads, mailing contacts, event registrations).

Part 1 of the UI lists them read-only (search, pages of 50) so the navigation leads
somewhere useful; part 2 (records, reporting, administration) adds the forms.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from nurture.audience.listing import list_page
from nurture.records.catalog import REGISTRY
from nurture.web.api.common import Now
from nurture.web.security.csrf import csrf_protect
from nurture.web.ui.render import UiReadSession, UiUser, is_htmx, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

#: the navigation's record pages: target model → page title
TARGETS = {
    "contact": "Contacts",
    "lead": "Leads",
    "mailing_contact": "Mailing lists",
    "event_registration": "Events",
}
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
def record_list(
    request: Request,
    user: UiUser,
    session: UiReadSession,
    now: Now,
    model: str,
    q: str = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    if model not in TARGETS:
        raise HTTPException(status_code=404, detail="not found")
    mdef = REGISTRY.get(model)
    page = list_page(session, model=model, now=now, text=q, offset=offset)
    context = {
        "model": model,
        "label": TARGETS[model],
        "page": page,
        "q": q,
        "breadcrumbs": [(TARGETS[model], None)],
        "rec_name": mdef.rec_name,
    }
    if is_htmx(request) and request.headers.get("hx-target") == "record-table":
        return render(request, "ui/records/_table.html", context)
    return render(request, "ui/records/list.html", context)
