"""Web UI: the workflow tree of a campaign (issue 14, screen 5).

Route: ``GET /campaigns/{id}/workflow`` — the tree; a fragment for htmx (the campaign form
loads it), a page of its own otherwise. Each figure links to
``/campaigns/{id}/participants?activity={aid}&state=processed|rejected`` or
``…&event=sent|opened|clicked|replied|bounced``.

The dialogs it opens live in :mod:`.activity_dialog` (an activity), :mod:`.previews` (the
email and SMS previews of that dialog) and :mod:`.action_dialog` (a new server action); they
share the labels, the edit permission and :func:`back_url` defined here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.campaigns import campaigns
from nurture.campaigns.activity_types import activity_types
from nurture.campaigns.models import NOT_TRIGGERS, TRIGGER_PARENT, Activity, Campaign, ServerAction
from nurture.campaigns.timing import hours_equivalent
from nurture.channels.email.models import EmailTemplate
from nurture.channels.sms.models import SmsTemplate
from nurture.reporting.activity_stats import MESSAGE_EVENTS, ActivityFigures, activity_stats
from nurture.web.api.common import Now
from nurture.web.security.auth import CurrentUser
from nurture.web.security.csrf import csrf_protect
from nurture.web.ui.render import UiReadSession, UiUser, is_htmx, render, safe_next, ui_require

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

CAN_EDIT = "campaigns.write"
Editor = ui_require(CAN_EDIT)

TYPE_LABELS = {"email": "Email", "sms": "SMS", "action": "Server action"}
#: the "Add child activity" menu, in this order, filtered by what the parent's type allows
CHILD_TRIGGER_ORDER = (
    "activity",
    "mail_open",
    "mail_not_open",
    "mail_reply",
    "mail_not_reply",
    "mail_click",
    "mail_not_click",
    "mail_bounce",
    "sms_click",
    "sms_not_click",
    "sms_bounce",
)
TRIGGER_MENU = {
    "begin": "At start",
    "activity": "Another activity",
    "mail_open": "Opened",
    "mail_not_open": "Not opened",
    "mail_click": "Clicked",
    "mail_not_click": "Not clicked",
    "mail_reply": "Replied",
    "mail_not_reply": "Not replied",
    "mail_bounce": "Bounced",
    "sms_click": "Clicked",
    "sms_not_click": "Not clicked",
    "sms_bounce": "Bounced",
}
EVENT_LABELS = {
    "sent": "Sent",
    "opened": "Opened",
    "clicked": "Clicked",
    "replied": "Replied",
    "bounced": "Bounced",
}
#: message figures shown per channel (an SMS is not opened nor replied to)
CHANNEL_EVENTS = {
    "email": MESSAGE_EVENTS,
    "sms": ("sent", "clicked", "bounced"),
}


def child_triggers(parent_type: str) -> list[str]:
    """The triggers a child of an activity of ``parent_type`` may have (SPEC §4)."""
    return [t for t in CHILD_TRIGGER_ORDER if TRIGGER_PARENT[t] in ("any", parent_type)]


def _unit(number: int, unit: str) -> str:
    return f"{number} {unit[:-1] if number == 1 else unit}"


def trigger_words(activity: Activity, parent_name: str | None = None) -> str:
    """The trigger in words: "Clicked after 2 hours", "Not opened within 7 days"…"""
    trigger, n, unit = activity.trigger_type, activity.interval_number, activity.interval_unit
    if trigger in NOT_TRIGGERS:
        return f"{TRIGGER_MENU[trigger]} within {_unit(n, unit)}"
    if trigger == "activity":
        after = parent_name or "the parent activity"
        return f"{_unit(n, unit)} after {after}" if n else f"Right after {after}"
    head = "At start" if trigger == "begin" else TRIGGER_MENU[trigger]
    if n:
        return f"{head} after {_unit(n, unit)}"
    return head if trigger == "begin" else f"{head}, at once"


def back_url(request: Request, campaign_id: int) -> str:
    """Where to return after the dialog: the page that showed the tree."""
    given = request.query_params.get("back")
    if given:
        return safe_next(given, f"/campaigns/{campaign_id}/workflow")
    current = request.headers.get("hx-current-url")
    if current:
        parts = urlsplit(current)
        return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""), f"/campaigns/{campaign_id}/workflow")
    return f"/campaigns/{campaign_id}/workflow"


@dataclass
class Node:
    activity: Activity
    trigger: str
    subtitle: str
    children: list[Node] = field(default_factory=list)
    depth: int = 0


def _order_key(a: Activity) -> tuple[int, int]:
    return (hours_equivalent(a.interval_number, a.interval_unit), a.id)


def _tree(session: Session, campaign: Campaign) -> list[Node]:
    """The activities as a tree (three statements whatever their number)."""
    activities = list(
        session.scalars(select(Activity).where(Activity.campaign_id == campaign.id).order_by(Activity.id))
    )
    ids = [a.id for a in activities]
    subtitles: dict[int, str] = {}
    if ids:
        for aid, subject in session.execute(
            select(EmailTemplate.activity_id, EmailTemplate.subject).where(EmailTemplate.activity_id.in_(ids))
        ):
            subtitles[int(aid)] = subject
        for aid, body in session.execute(
            select(SmsTemplate.activity_id, SmsTemplate.body).where(SmsTemplate.activity_id.in_(ids))
        ):
            subtitles[int(aid)] = body if len(body) <= 90 else body[:89] + "…"
        action_ids = {a.server_action_id for a in activities if a.server_action_id}
        if action_ids:
            found = session.execute(
                select(ServerAction.id, ServerAction.name).where(ServerAction.id.in_(action_ids))
            )
            names = {int(i): str(n) for i, n in found}
            for a in activities:
                if a.server_action_id:
                    subtitles[a.id] = names.get(a.server_action_id, "")
    by_id = {a.id: a for a in activities}
    nodes = {
        a.id: Node(
            activity=a,
            trigger=trigger_words(a, by_id[a.parent_id].name if a.parent_id in by_id else None),
            subtitle=subtitles.get(a.id, ""),
        )
        for a in activities
    }
    roots: list[Node] = []
    for a in sorted(activities, key=_order_key):
        node = nodes[a.id]
        if a.parent_id in nodes:
            nodes[a.parent_id].children.append(node)
        else:
            roots.append(node)

    def set_depth(items: list[Node], depth: int) -> None:
        for n in items:
            n.depth = depth
            set_depth(n.children, depth + 1)

    set_depth(roots, 0)
    return roots


def _participants_url(campaign_id: int, activity_id: int, **params: str) -> str:
    query = urlencode({"activity": activity_id, **params})
    return f"/campaigns/{campaign_id}/participants?{query}"


def _series(figures: ActivityFigures) -> list[tuple[str, int, int]]:
    return [(d.day.strftime("%a %d %b"), d.processed, d.rejected) for d in figures.daily]


def _tree_context(
    request: Request, session: Session, user: CurrentUser, campaign: Campaign, now: Any
) -> dict[str, Any]:
    stats = activity_stats(session=session, campaign_id=campaign.id, now=now)
    return {
        "campaign": campaign,
        "roots": _tree(session, campaign),
        "stats": stats,
        "can_edit": user.can(CAN_EDIT),
        "back": back_url(request, campaign.id),
        "child_triggers": {t: child_triggers(t) for t in activity_types()},
        "trigger_menu": TRIGGER_MENU,
        "type_labels": TYPE_LABELS,
        "event_labels": EVENT_LABELS,
        "channel_events": CHANNEL_EVENTS,
        "participants_url": _participants_url,
        "query": urlencode,
        "series": _series,
    }


@router.get("/campaigns/{campaign_id}/workflow")
def workflow_fragment(
    request: Request, user: UiUser, session: UiReadSession, now: Now, campaign_id: int
) -> Response:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    context = _tree_context(request, session, user, campaign, now)
    if is_htmx(request):
        return render(request, "ui/workflow/_tree.html", context)
    context["breadcrumbs"] = [
        ("Campaigns", "/campaigns"),
        (campaign.name, f"/campaigns/{campaign.id}"),
        ("Workflow", None),
    ]
    return render(request, "ui/workflow/page.html", context)
