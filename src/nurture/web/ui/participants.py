"""Web UI: a campaign's participants and their traces (issue 14, screen 8).

* ``GET /campaigns/{id}/participants`` — filters ``activity``, ``state``, ``test``
  (``no`` default / ``only`` / ``all``), ``trace_state`` and ``event`` (the workflow tree's
  figures link here with them), keyset pages (``after``).
* ``GET /campaigns/{id}/participants/{pid}`` — the timeline; ``POST …/remove`` and
  ``POST …/traces/{tid}/cancel`` the hand actions.
* ``GET /campaigns/{id}/participants/{pid}/messages/{tid}`` — the message as sent (email:
  headers, the HTML in a sandboxed frame served by ``…/html``, the raw source; SMS: text).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from nurture.campaigns import campaigns
from nurture.campaigns.models import Activity
from nurture.channels.email.links import remove_open_pixel
from nurture.channels.email.mime import html_body
from nurture.channels.email.models import MailMessage
from nurture.engine import participants as engine_participants
from nurture.engine.models import PARTICIPANT_STATES, TRACE_STATES
from nurture.errors import NotFound, NurtureError
from nurture.reporting import timeline as reporting_timeline
from nurture.web.api.common import Now
from nurture.web.api.users import audit
from nurture.web.security.auth import CurrentUser
from nurture.web.security.csrf import csrf_protect
from nurture.web.ui.render import UiReadSession, UiUser, database, redirect, render, ui_require

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)
Writer = Annotated[CurrentUser, ui_require("campaigns.write")]

PAGE = 50
TESTS = {"no": False, "only": True, "all": None}
#: what a message frame may do: show the email (no script; its open pixel is taken out)
MESSAGE_FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; font-src data:; "
    "frame-ancestors 'self'; sandbox"
)


def _int_or_none(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        return None


@router.get("/campaigns/{campaign_id}/participants")
def participant_list(
    request: Request,
    user: UiUser,
    session: UiReadSession,
    campaign_id: int,
    activity: str | None = None,
    state: str | None = None,
    test: str = "no",
    trace_state: str | None = None,
    event: str | None = None,
    after: str | None = None,
) -> Response:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    activities = list(
        session.scalars(
            select(Activity).where(Activity.campaign_id == campaign_id).order_by(Activity.id)
        )
    )
    filters: dict[str, Any] = {
        "activity": _int_or_none(activity),
        "state": state or None,
        "test": test if test in TESTS else "no",
        "trace_state": trace_state or None,
        "event": event or None,
    }
    page = engine_participants.list_participants(
        session,
        campaign_id=campaign_id,
        state=filters["state"],
        is_test=TESTS[filters["test"]],
        activity_id=filters["activity"],
        trace_state=filters["trace_state"],
        event=filters["event"],
        after=_int_or_none(after),
        limit=PAGE,
    )
    query = {k: v for k, v in filters.items() if v is not None}
    next_url = None
    if page.next_after is not None:
        next_url = f"?{urlencode({**query, 'after': page.next_after})}"
    title = "Tests" if filters["test"] == "only" else "Participants"
    return render(
        request,
        "ui/participants/list.html",
        {
            "campaign": campaign,
            "activities": activities,
            "filters": filters,
            "page": page,
            "next_url": next_url,
            "first_url": f"?{urlencode(query)}" if after else None,
            "states": PARTICIPANT_STATES,
            "trace_states": TRACE_STATES,
            "events": engine_participants.EVENTS,
            "title": title,
            "breadcrumbs": [
                ("Campaigns", "/campaigns"),
                (campaign.name, f"/campaigns/{campaign.id}"),
                (title, None),
            ],
        },
    )


def _record_label(session: Any, model: str, res_id: int) -> tuple[str, str | None]:
    labels = engine_participants.record_labels(session, model=model, ids=[res_id])
    return labels.get(res_id, (f"{model} {res_id} (deleted)", None))


@router.get("/campaigns/{campaign_id}/participants/{participant_id}")
def participant_page(
    request: Request, user: UiUser, session: UiReadSession, campaign_id: int, participant_id: int
) -> Response:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    participant = engine_participants.get_participant(
        session, campaign_id=campaign_id, participant_id=participant_id
    )
    name, email = _record_label(session, campaign.model, participant.res_id)
    steps = reporting_timeline.timeline(session, participant_id=participant_id)
    return render(
        request,
        "ui/participants/timeline.html",
        {
            "campaign": campaign,
            "participant": participant,
            "record_name": name,
            "record_email": email,
            "steps": steps,
            "can_write": user.can("campaigns.write"),
            "breadcrumbs": [
                ("Campaigns", "/campaigns"),
                (campaign.name, f"/campaigns/{campaign.id}"),
                ("Participants", f"/campaigns/{campaign.id}/participants"),
                (name, None),
            ],
        },
    )


@router.post("/campaigns/{campaign_id}/participants/{participant_id}/remove")
def remove(
    request: Request, user: Writer, now: Now, campaign_id: int, participant_id: int
) -> Response:
    back = f"/campaigns/{campaign_id}/participants/{participant_id}"
    try:
        with database(request).transaction() as s:
            engine_participants.get_participant(
                s, campaign_id=campaign_id, participant_id=participant_id
            )
            participant = engine_participants.remove_participant(
                s, participant_id=participant_id, now=now
            )
            audit(s, user, "participant.remove", participant, {"campaign_id": campaign_id}, now=now, request=request)
    except NotFound:
        raise
    except NurtureError as exc:
        return redirect(request, back, exc.message, "error")
    return redirect(request, back, "The participant was removed; its scheduled steps are canceled.")


@router.post("/campaigns/{campaign_id}/participants/{participant_id}/traces/{trace_id}/cancel")
def cancel(
    request: Request, user: Writer, now: Now, campaign_id: int, participant_id: int, trace_id: int
) -> Response:
    back = f"/campaigns/{campaign_id}/participants/{participant_id}"
    try:
        with database(request).transaction() as s:
            engine_participants.get_participant(
                s, campaign_id=campaign_id, participant_id=participant_id
            )
            engine_participants.get_trace(s, participant_id=participant_id, trace_id=trace_id)
            engine_participants.cancel_trace(s, trace_id=trace_id, now=now)
    except NotFound:
        raise
    except NurtureError as exc:
        return redirect(request, back, exc.message, "error")
    return redirect(request, back, "The step was canceled.")


def _message(session: Any, campaign_id: int, participant_id: int, trace_id: int) -> Any:
    engine_participants.get_participant(session, campaign_id=campaign_id, participant_id=participant_id)
    engine_participants.get_trace(session, participant_id=participant_id, trace_id=trace_id)
    message = reporting_timeline.message_of_trace(session, trace_id=trace_id)
    if message is None:
        raise NotFound(f"no message was composed for trace {trace_id}", field="trace_id")
    return message


@router.get("/campaigns/{campaign_id}/participants/{participant_id}/messages/{trace_id}")
def message_page(
    request: Request,
    user: UiUser,
    session: UiReadSession,
    campaign_id: int,
    participant_id: int,
    trace_id: int,
) -> Response:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    message = _message(session, campaign_id, participant_id, trace_id)
    participant = engine_participants.get_participant(
        session, campaign_id=campaign_id, participant_id=participant_id
    )
    name = _record_label(session, campaign.model, participant.res_id)[0]
    is_email = isinstance(message, MailMessage)
    source = bytes(message.raw).decode("utf-8", "replace") if is_email and message.raw else None
    base = f"/campaigns/{campaign_id}/participants/{participant_id}"
    return render(
        request,
        "ui/participants/message.html",
        {
            "campaign": campaign,
            "message": message,
            "is_email": is_email,
            "source": source,
            "has_html": bool(is_email and message.raw and html_body(bytes(message.raw))),
            "frame_url": f"{base}/messages/{trace_id}/html",
            "breadcrumbs": [
                ("Campaigns", "/campaigns"),
                (campaign.name, f"/campaigns/{campaign.id}"),
                ("Participants", f"/campaigns/{campaign.id}/participants"),
                (name, base),
                ("Message", None),
            ],
        },
    )


@router.get("/campaigns/{campaign_id}/participants/{participant_id}/messages/{trace_id}/html")
def message_html(
    request: Request,
    user: UiUser,
    session: UiReadSession,
    campaign_id: int,
    participant_id: int,
    trace_id: int,
) -> Response:
    """The HTML part of an email as sent, for a sandboxed frame (no script, no network)."""
    message = _message(session, campaign_id, participant_id, trace_id)
    html = html_body(bytes(message.raw)) if isinstance(message, MailMessage) and message.raw else None
    if html is None:
        raise NotFound("this message has no HTML part", field="trace_id")
    return Response(
        remove_open_pixel(html),
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": MESSAGE_FRAME_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "no-store",
        },
    )
