"""Web UI: the workflow tree of a campaign and the activity dialog (issue 14, screens 5–6).

Routes:

* ``GET /campaigns/{id}/workflow`` — the tree; a fragment for htmx (the campaign form loads
  it), a page of its own otherwise. Each figure links to
  ``/campaigns/{id}/participants?activity={aid}&state=processed|rejected`` or
  ``…&event=sent|opened|clicked|replied|bounced``.
* ``GET /campaigns/{id}/activities/new`` (``parent_id``, ``trigger_type``, ``activity_type``)
  and ``GET /campaigns/{id}/activities/{aid}`` — the activity dialog;
  ``POST`` to the same addresses saves it (``save=close|new``);
  ``POST /campaigns/{id}/activities/{aid}/delete`` deletes it and its descendants.
* ``POST /campaigns/{id}/activities/preview/email`` — the email rendered for a record, as a
  document for the preview ``<iframe sandbox>`` (its own strict CSP);
  ``POST …/preview/sms`` — the SMS counter and preview (htmx fragment);
  ``GET …/records`` — the record picker's options.
* ``GET|POST /campaigns/{id}/server-actions/new`` — the "new server action" sub-dialog.

Every write goes through the campaign, channel and action services; the pages only turn
form fields into their arguments and show their errors next to the fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture import actions, audience
from nurture.campaigns import service as campaigns
from nurture.campaigns.models import (
    ACTIVITY_TYPES,
    EVENT_TRIGGERS,
    INTERVAL_UNITS,
    NOT_TRIGGERS,
    TRIGGER_PARENT,
    Activity,
    Campaign,
    ServerAction,
)
from nurture.campaigns.timing import hours_equivalent
from nurture.channels.email import service as email
from nurture.channels.email import templates as email_templates
from nurture.channels.email.models import EmailTemplate
from nurture.channels.email.templates import TemplateRenderError, TemplateValidationError
from nurture.channels.sms import context as sms_context
from nurture.channels.sms import render as sms_render
from nurture.channels.sms import service as sms
from nurture.channels.sms.models import SmsTemplate
from nurture.channels.sms.segments import count_segments
from nurture.errors import NotFound, NurtureError, ValidationError
from nurture.records import service as records
from nurture.records.catalog import CRM_ACTIVITY_TYPES, REGISTRY
from nurture.records.registry import ModelDef
from nurture.reporting.activity_stats import MESSAGE_EVENTS, ActivityFigures, activity_stats
from nurture.web.api.common import Now
from nurture.web.security import CurrentUser, csrf_protect
from nurture.web.ui.render import (
    FieldError,
    UiReadSession,
    UiUser,
    database,
    environment,
    is_htmx,
    redirect,
    render,
    safe_next,
    ui_require,
)

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
#: service error fields -> form fields of the dialog
FORM_FIELDS = {"domain": "filter", "html": "body_html", "body": "sms_body"}


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


def _back(request: Request, campaign_id: int) -> str:
    """Where to return after the dialog: the page that showed the tree."""
    given = request.query_params.get("back")
    if given:
        return safe_next(given, f"/campaigns/{campaign_id}/workflow")
    current = request.headers.get("hx-current-url")
    if current:
        parts = urlsplit(current)
        return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""), f"/campaigns/{campaign_id}/workflow")
    return f"/campaigns/{campaign_id}/workflow"


# --------------------------------------------------------------------------- the tree


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
        "back": _back(request, campaign.id),
        "child_triggers": {t: child_triggers(t) for t in ACTIVITY_TYPES},
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


# --------------------------------------------------------------------------- the dialog


def _placeholders(mdef: ModelDef) -> list[tuple[str, str]]:
    """(expression, label) of the fields a template may use: scalars and to-one names."""
    out: list[tuple[str, str]] = []
    for f in mdef.fields.values():
        if f.is_to_many or f.name == "id":
            continue
        if f.type == "many2one" and f.relation:
            target = REGISTRY.get(f.relation)
            out.append((f"record.{f.name}.{target.rec_name}", f"{f.label} › {target.fields[target.rec_name].label}"))
        elif not f.is_relation:
            out.append((f"record.{f.name}", f.label))
    return out


def _form_values(form: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _error_for(exc: NurtureError) -> FieldError:
    """The service's error, on the dialog's field (the message names the problem)."""
    # a filter error names the path at fault (``tags.nme``): it belongs next to the builder
    name = "domain" if exc.code == "invalid_filter" else exc.field
    message = exc.message
    if isinstance(exc, TemplateValidationError):
        first = exc.problems[0]
        message = f"Line {first.line}, column {first.column}: {first.message}"
        if len(exc.problems) > 1:
            message += f" (and {len(exc.problems) - 1} more problem(s))"
    return FieldError(field=FORM_FIELDS.get(name, name) if name else None, message=message)


def _values_of(session: Session, activity: Activity) -> dict[str, str]:
    values = {
        "name": activity.name,
        "activity_type": activity.activity_type,
        "trigger_type": activity.trigger_type,
        "parent_id": str(activity.parent_id or ""),
        "interval_number": str(activity.interval_number),
        "interval_unit": activity.interval_unit,
        "expiry_number": "" if activity.expiry_number is None else str(activity.expiry_number),
        "expiry_unit": activity.expiry_unit,
        "filter": activity.domain or "[]",
        "server_action_id": str(activity.server_action_id or ""),
    }
    template = email.template_for_activity(session=session, activity_id=activity.id)
    if template is not None:
        values.update(
            subject=template.subject,
            preview=template.preview or "",
            from_addr=template.from_addr or "",
            reply_to=template.reply_to or "",
            body_html=template.body_html or "",
        )
    text = sms.template_for_activity(session=session, activity_id=activity.id)
    if text is not None:
        values.update(sms_body=text.body, sms_opt_out="1" if text.opt_out else "")
    return values


#: every field the dialog shows (a missing one is shown empty)
DIALOG_FIELDS = (
    "name", "activity_type", "trigger_type", "parent_id", "interval_number", "interval_unit",
    "expiry_number", "expiry_unit", "filter", "server_action_id", "subject", "preview",
    "from_addr", "reply_to", "body_html", "sms_body", "sms_opt_out",
)
DEFAULT_EMAIL = (
    "<h1>Hello {{ record.name | default('there') }}</h1>\n"
    "<p>Write your message here.</p>\n"
    '<p><a href="https://example.com">Call to action</a></p>'
)


def _new_values(params: Mapping[str, str], parent: Activity | None) -> dict[str, str]:
    trigger = params.get("trigger_type") or ("activity" if parent else "begin")
    activity_type = params.get("activity_type") or "email"
    return {
        "name": "",
        "activity_type": activity_type if activity_type in ACTIVITY_TYPES else "email",
        "trigger_type": trigger if trigger in TRIGGER_PARENT else "begin",
        "parent_id": str(parent.id) if parent else "",
        "interval_number": "0" if trigger in EVENT_TRIGGERS or trigger == "begin" else "1",
        "interval_unit": "days" if trigger in NOT_TRIGGERS else "hours",
        "expiry_number": "",
        "expiry_unit": "days",
        "filter": "[]",
        "server_action_id": "",
        "subject": "",
        "preview": "",
        "from_addr": "",
        "reply_to": "",
        "body_html": DEFAULT_EMAIL,
        "sms_body": "Hi {{ record.name | default('there') }}, ",
        "sms_opt_out": "1",
    }


def _sample(session: Session, campaign: Campaign, domain: list[Any], now: Any) -> list[tuple[int, str]]:
    """(id, name) of the first 20 records of the campaign's model matching ``domain``."""
    mdef = REGISTRY.target(campaign.model)
    rows = session.scalars(
        select(mdef.orm)
        .where(
            audience.compile_domain(campaign.model, domain, now=now),
            audience.active_condition(campaign.model, include_archived=campaign.include_archived),
        )
        .order_by(mdef.orm.id)
        .limit(20)
    ).all()
    return [(int(r.id), str(getattr(r, mdef.rec_name, "") or f"#{r.id}")) for r in rows]


def _dialog(
    request: Request,
    session: Session,
    *,
    campaign: Campaign,
    activity: Activity | None,
    values: dict[str, str],
    now: Any,
    back: str,
    error: FieldError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    mdef = REGISTRY.target(campaign.model)
    values = {**dict.fromkeys(DIALOG_FIELDS, ""), **values}
    others = [a for a in campaign.activities if activity is None or a.id != activity.id]
    if activity is not None:
        excluded = set(campaigns.descendant_ids(session, activity_id=activity.id))
        others = [a for a in others if a.id not in excluded]
    parent_id = values.get("parent_id") or ""
    parent = next((a for a in others if str(a.id) == parent_id), None)
    base = campaigns.applied_domain(session, activity=parent) if parent else campaigns.campaign_domain(campaign)
    try:
        own = audience.parse_domain(values.get("filter") or "[]")
        applied = campaigns.and_domains(base, own)
        applied_count: int | None = audience.count_matching(
            session, campaign.model, applied, now=now, include_archived=campaign.include_archived
        )
    except NurtureError:
        applied, applied_count = base, None
    server_actions = list(
        session.scalars(select(ServerAction).where(ServerAction.model == campaign.model).order_by(ServerAction.name))
    )
    sample = _sample(session, campaign, campaigns.campaign_domain(campaign), now)
    title = f"Edit “{activity.name}”" if activity else "New activity"
    context = {
        "campaign": campaign,
        "activity": activity,
        "values": values,
        "error": error,
        "others": others,
        "parent": parent,
        "triggers": list(TRIGGER_PARENT),
        "trigger_parent": TRIGGER_PARENT,
        "trigger_menu": TRIGGER_MENU,
        "type_labels": TYPE_LABELS,
        "units": INTERVAL_UNITS,
        "applied_domain": json.dumps(applied),
        "applied_count": applied_count,
        "campaign_domain": campaign.domain or "[]",
        "server_actions": server_actions,
        "placeholders": _placeholders(mdef),
        "sample": sample,
        "rec_name": mdef.rec_name,
        "back": back,
        "title": title,
        "breadcrumbs": [
            ("Campaigns", "/campaigns"),
            (campaign.name, back),
            (title, None),
        ],
    }
    return render(request, "ui/workflow/activity.html", context, status_code=status_code)


@router.get("/campaigns/{campaign_id}/activities/new")
def new_activity(
    request: Request, session: UiReadSession, now: Now, campaign_id: int, user: CurrentUser = Editor
) -> Response:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    parent = None
    raw_parent = request.query_params.get("parent_id")
    if raw_parent and raw_parent.isdigit():
        parent = session.get(Activity, int(raw_parent))
        if parent is None or parent.campaign_id != campaign.id:
            parent = None
    values = _new_values(request.query_params, parent)
    return _dialog(
        request, session, campaign=campaign, activity=None, values=values, now=now,
        back=_back(request, campaign.id),
    )


@router.get("/campaigns/{campaign_id}/activities/records")
def record_options(
    request: Request, session: UiReadSession, user: UiUser, now: Now, campaign_id: int, q: str = ""
) -> Response:
    """The record picker: the first 20 records of the campaign's filter matching ``q``."""
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    mdef = REGISTRY.target(campaign.model)
    domain = campaigns.campaign_domain(campaign)
    if q.strip():
        search: list[Any] = [[mdef.rec_name, "ilike", q.strip()]]
        if mdef.email_field:
            search = ["|", *search, [mdef.email_field, "ilike", q.strip()]]
        domain = campaigns.and_domains(domain, search)
    options = _sample(session, campaign, domain, now)
    return render(request, "ui/workflow/_record_options.html", {"sample": options})


def _campaign_activity(session: Session, campaign_id: int, activity_id: int) -> Activity:
    activity = campaigns.get_activity(session=session, activity_id=activity_id)
    if activity.campaign_id != campaign_id:
        raise NotFound(
            f"activity {activity_id} does not exist in campaign {campaign_id}", field="activity_id"
        )
    return activity


@router.get("/campaigns/{campaign_id}/activities/{activity_id}")
def edit_activity_page(
    request: Request,
    session: UiReadSession,
    now: Now,
    campaign_id: int,
    activity_id: int,
    user: CurrentUser = Editor,
) -> Response:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    activity = _campaign_activity(session, campaign_id, activity_id)
    values = _values_of(session, activity)
    return _dialog(
        request, session, campaign=campaign, activity=activity, values=values, now=now,
        back=_back(request, campaign.id),
    )


def _whole(values: Mapping[str, str], name: str, label: str, *, optional: bool = False) -> int | None:
    raw = (values.get(name) or "").strip()
    if not raw and optional:
        return None
    if not raw.isdigit():
        raise ValidationError(f"{label} must be a whole number ≥ 0", field=name)
    return int(raw)


def _optional_id(values: Mapping[str, str], name: str) -> int | None:
    raw = (values.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValidationError(f"{name} must be an id", field=name)
    return int(raw)


def _save(session: Session, *, campaign: Campaign, activity_id: int | None, values: Mapping[str, str], now: Any) -> Activity:
    """Create or edit the activity and its content, in the caller's transaction."""
    activity_type = values.get("activity_type") or ""
    fields: dict[str, Any] = {
        "name": values.get("name") or "",
        "activity_type": activity_type,
        "trigger_type": values.get("trigger_type") or "begin",
        "parent_id": _optional_id(values, "parent_id"),
        "interval_number": _whole(values, "interval_number", "Interval"),
        "interval_unit": values.get("interval_unit") or "hours",
        "expiry_number": _whole(values, "expiry_number", "Cancel after", optional=True),
        "expiry_unit": values.get("expiry_unit") or "hours",
        "domain": values.get("filter") or "[]",
        "server_action_id": _optional_id(values, "server_action_id") if activity_type == "action" else None,
    }
    if activity_type == "action" and fields["server_action_id"] is None:
        raise ValidationError("pick the server action to run (or create one)", field="server_action_id")
    if activity_id is None:
        activity = campaigns.add_activity(session=session, now=now, campaign_id=campaign.id, **fields)
    else:
        activity = campaigns.edit_activity(session=session, now=now, activity_id=activity_id, **fields)
    if activity_type == "email":
        current = email.template_for_activity(session=session, activity_id=activity.id)
        email.set_activity_template(
            session=session,
            now=now,
            activity_id=activity.id,
            mailing_list_id=current.mailing_list_id if current else None,
            subject=values.get("subject") or "",
            body_html=values.get("body_html") or "",
            preview=values.get("preview") or "",
            from_addr=values.get("from_addr") or None,
            reply_to=values.get("reply_to") or None,
        )
    elif activity_type == "sms":
        sms.set_activity_template(
            session=session,
            now=now,
            activity_id=activity.id,
            body=values.get("sms_body") or "",
            opt_out=bool(values.get("sms_opt_out")),
        )
    return activity


async def _submit(
    request: Request, now: Any, campaign_id: int, activity_id: int | None
) -> Response:
    values = _form_values(await request.form())
    error: FieldError | None = None
    saved_name = ""
    try:
        with database(request).transaction() as session:
            campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
            if activity_id is not None:
                _campaign_activity(session, campaign_id, activity_id)
            activity = _save(session, campaign=campaign, activity_id=activity_id, values=values, now=now)
            saved_name = activity.name
    except NurtureError as exc:
        if exc.code == "not_found" and exc.field in ("campaign_id", "activity_id"):
            raise
        error = _error_for(exc)
    back = safe_next(values.get("back"), f"/campaigns/{campaign_id}/workflow")
    if error is None:
        message = f"Activity “{saved_name}” saved."
        if values.get("save") == "new":
            return redirect(request, f"/campaigns/{campaign_id}/activities/new?{urlencode({'back': back})}", message)
        return redirect(request, back, message)
    with database(request).read() as session:
        campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
        current = _campaign_activity(session, campaign_id, activity_id) if activity_id else None
        return _dialog(
            request, session, campaign=campaign, activity=current, values=values, now=now,
            back=back, error=error, status_code=422,
        )


@router.post("/campaigns/{campaign_id}/activities/new")
async def create_activity(
    request: Request, now: Now, campaign_id: int, user: CurrentUser = Editor
) -> Response:
    return await _submit(request, now, campaign_id, None)


@router.post("/campaigns/{campaign_id}/activities/{activity_id}")
async def save_activity(
    request: Request, now: Now, campaign_id: int, activity_id: int, user: CurrentUser = Editor
) -> Response:
    return await _submit(request, now, campaign_id, activity_id)


@router.post("/campaigns/{campaign_id}/activities/{activity_id}/delete")
async def delete_activity(
    request: Request, now: Now, campaign_id: int, activity_id: int, user: CurrentUser = Editor
) -> Response:
    form = await request.form()
    back_value = form.get("back")
    back = safe_next(back_value if isinstance(back_value, str) else None, f"/campaigns/{campaign_id}/workflow")
    with database(request).transaction() as session:
        activity = _campaign_activity(session, campaign_id, activity_id)
        name = activity.name
        count = len(campaigns.descendant_ids(session, activity_id=activity_id))
        campaigns.delete_activity(session=session, now=now, activity_id=activity_id)
    more = f" and its {count - 1} descendant{'s' if count > 2 else ''}" if count > 1 else ""
    return redirect(request, back, f"Activity “{name}”{more} deleted.")


# --------------------------------------------------------------------------- previews

#: the preview document's own policy: no script at all, the email's inline styles allowed
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https: http:; "
    "font-src https: data:; frame-ancestors 'self'; sandbox"
)


def _preview_page(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        body,
        status_code=status_code,
        headers={
            "Content-Security-Policy": PREVIEW_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "no-store",
        },
    )


def _problem_page(title: str, problems: list[str]) -> str:
    items = "".join(f"<li>{escape(p)}</li>" for p in problems)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Preview</title></head>'
        '<body style="font:15px system-ui,sans-serif;color:#7a1a12;padding:1rem">'
        f"<h2 style=\"font-size:1.05rem\">{escape(title)}</h2><ul>{items}</ul></body></html>"
    )


def _record(session: Session, model: str, raw: str | None) -> Any:
    if raw and raw.strip().isdigit():
        return records.get_record(session=session, model=model, record_id=int(raw))
    return None


@router.post("/campaigns/{campaign_id}/activities/preview/email")
async def preview_email(
    request: Request, session: UiReadSession, user: UiUser, campaign_id: int
) -> Response:
    values = _form_values(await request.form())
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    try:
        record = _record(session, campaign.model, values.get("record_id"))
        rendered = email_templates.render_preview(
            campaign.model,
            email_templates.EmailTemplate(
                subject=values.get("subject") or " ",
                html=values.get("body_html") or "",
                preview=values.get("preview") or "",
            ),
            record,
            context={"unsubscribe_url": "#unsubscribe", "view_url": "#view"},
        )
    except TemplateValidationError as exc:
        problems = [
            f"{'Body' if p.field == 'html' else p.field.title()}, line {p.line}, column {p.column}: {p.message}"
            for p in exc.problems
        ]
        return _preview_page(_problem_page("This template has problems", problems))
    except (TemplateRenderError, NurtureError) as exc:
        return _preview_page(_problem_page("The preview could not be rendered", [exc.message]))
    return _preview_page(rendered.html)


@router.post("/campaigns/{campaign_id}/activities/preview/sms")
async def preview_sms(
    request: Request, session: UiReadSession, user: UiUser, campaign_id: int
) -> Response:
    values = _form_values(await request.form())
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    body = values.get("sms_body") or ""
    source = count_segments(body)
    problems: list[str] = []
    rendered = None
    try:
        record = _record(session, campaign.model, values.get("record_id"))
        compiled = sms_render.compile_sms(campaign.model, body)
        opt_out = sms_context.sms_context().opt_out_text if values.get("sms_opt_out") else None
        rendered = compiled.render(record, opt_out_text=opt_out)
    except TemplateValidationError as exc:
        problems = [f"Line {p.line}, column {p.column}: {p.message}" for p in exc.problems]
    except (TemplateRenderError, NurtureError) as exc:
        problems = [exc.message]
    return render(
        request,
        "ui/workflow/_sms_preview.html",
        {"source": source, "rendered": rendered, "problems": problems},
    )


# --------------------------------------------------------------------------- server actions


@dataclass(frozen=True)
class KindField:
    key: str
    label: str
    kind: str = "text"  # text, textarea, int, bool, select, list, json, tags, field, actions
    options: tuple[str, ...] = ()
    help: str = ""


def _kind_forms(model: str) -> dict[str, list[KindField]]:
    """The fields of each built-in kind (SPEC §8); plugin kinds take their JSON settings."""
    targets = tuple(m.name for m in REGISTRY.targets())
    units = tuple(INTERVAL_UNITS)
    return {
        "update_record": [
            KindField("set_field", "Set field", "field"),
            KindField("set_value", "To value", help="Numbers, true/false and record ids are converted."),
            KindField("add_tags", "Add tags", "list", help="Comma-separated tag names."),
            KindField("remove_tags", "Remove tags", "list", help="Comma-separated tag names."),
        ],
        "add_to_list": [KindField("list", "Mailing list", help="A list name (created if new) or id.")],
        "remove_from_list": [
            KindField("list", "Mailing list", help="A list name or id."),
            KindField("opt_out", "Keep the subscription as opted out", "bool"),
        ],
        "crm_activity": [
            KindField("activity_type", "Kind", "select", CRM_ACTIVITY_TYPES),
            KindField("summary", "Summary", help="Placeholders allowed: {{ record.name }}."),
            KindField("note", "Note", "textarea"),
            KindField("due_in", "Due in", "int"),
            KindField("due_unit", "Due unit", "select", units),
            KindField("user_field", "Assign to (field path)", help="e.g. salesperson"),
            KindField("fallback_user_id", "Fallback user id", "int"),
        ],
        "create_record": [
            KindField("model", "Record to create", "select", targets),
            KindField("values", "Constant values (JSON)", "json", help='e.g. {"type": "opportunity"}'),
            KindField("mapping", "Field mapping (JSON)", "json", help='target field: source path, e.g. {"name": "name", "contact": "id"}'),
        ],
        "blacklist": [
            KindField("what", "What", "select", ("email", "phone", "both")),
            KindField("reason", "Reason"),
        ],
        "webhook": [
            KindField("url", "URL", help="https://… (private addresses are refused)"),
            KindField("secret", "Signing secret"),
            KindField("fields", "Fields to send", "list", help="Comma-separated; empty: all."),
            KindField("timeout", "Timeout (seconds)", "int"),
            KindField("retries", "Retries", "int"),
        ],
        "multi": [KindField("actions", "Actions to run in order", "actions")],
        "transactional": [
            KindField("channel", "Channel", "select", ("email", "sms")),
            KindField("subject", "Subject (email)"),
            KindField("html", "HTML body (email)", "textarea"),
            KindField("from_addr", "From (email)"),
            KindField("reply_to", "Reply-to (email)"),
            KindField("body", "Text (SMS)", "textarea"),
        ],
    }


def _kind_fields(model: str, kind: str) -> list[KindField]:
    return _kind_forms(model).get(kind, [KindField("payload", "Settings (JSON)", "json")])


def _value_for(mdef: ModelDef, name: str, raw: str) -> Any:
    fdef = mdef.fields.get(name)
    text = raw.strip()
    if fdef is None:
        return raw
    if fdef.type in ("integer", "many2one") and text.lstrip("-").isdigit():
        return int(text)
    if fdef.type == "float":
        try:
            return float(text)
        except ValueError:
            return raw
    if fdef.type == "boolean" and text.lower() in ("true", "false", "1", "0", "yes", "no"):
        return text.lower() in ("true", "1", "yes")
    if not text and fdef.nullable:
        return None
    return raw


def _payload(model: str, kind: str, values: Mapping[str, str], chosen: list[str]) -> dict[str, Any]:
    """The action's payload from the sub-dialog's fields (``p.<key>``)."""
    mdef = REGISTRY.target(model)
    payload: dict[str, Any] = {}
    for f in _kind_fields(model, kind):
        raw = values.get(f"p.{f.key}", "")
        if f.kind == "bool":
            if raw:
                payload[f.key] = True
            continue
        if f.kind == "actions":
            payload[f.key] = [int(v) for v in chosen if v.isdigit()]
            continue
        if not raw.strip():
            continue
        if f.kind == "int":
            if not raw.strip().lstrip("-").isdigit():
                raise ValidationError(f"{f.label} must be a whole number", field=f.key)
            payload[f.key] = int(raw)
        elif f.kind == "list":
            payload[f.key] = [v.strip() for v in raw.split(",") if v.strip()]
        elif f.kind == "json":
            try:
                decoded = json.loads(raw)
            except ValueError as exc:
                raise ValidationError(f"{f.label}: not valid JSON ({exc})", field=f.key) from None
            if f.key == "payload":
                if not isinstance(decoded, dict):
                    raise ValidationError("the settings must be a JSON object", field="payload")
                return decoded
            payload[f.key] = decoded
        elif f.key == "list" and raw.strip().isdigit():
            payload[f.key] = int(raw)
        else:
            payload[f.key] = raw
    if kind == "update_record":
        set_field = payload.pop("set_field", None)
        set_value = payload.pop("set_value", "")
        if set_field:
            payload["set"] = {set_field: _value_for(mdef, set_field, str(set_value))}
    return payload


def _action_error_field(field_name: str | None, kind: str) -> str | None:
    if field_name is None:
        return None
    if kind == "update_record" and (field_name == "set" or field_name.startswith("set.")):
        return "p.set_value"
    if field_name in ("name", "action_type", "model"):
        return field_name
    return f"p.{field_name}"


def _action_dialog(
    request: Request,
    session: Session,
    campaign: Campaign,
    kind: str,
    values: Mapping[str, str],
    chosen: list[str],
    error: FieldError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    mdef = REGISTRY.target(campaign.model)
    existing = list(
        session.scalars(select(ServerAction).where(ServerAction.model == campaign.model).order_by(ServerAction.name))
    )
    return render(
        request,
        "ui/workflow/_server_action.html",
        {
            "campaign": campaign,
            "kinds": actions.kinds(),
            "kind": kind,
            "fields": _kind_fields(campaign.model, kind),
            "values": values,
            "chosen": chosen,
            "error": error,
            "model_fields": [f for f in mdef.fields.values() if not f.readonly and not f.is_to_many and f.name != "id"],
            "existing": existing,
        },
        status_code=status_code,
    )


@router.get("/campaigns/{campaign_id}/server-actions/new")
def new_server_action(
    request: Request, session: UiReadSession, campaign_id: int, kind: str = "update_record", user: CurrentUser = Editor
) -> Response:
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    kind = request.query_params.get("action_type") or kind
    if actions.get_kind(kind) is None:
        kind = "update_record"
    values = {k: v for k, v in request.query_params.items() if k == "name"}
    return _action_dialog(request, session, campaign, kind, values, [])


@router.post("/campaigns/{campaign_id}/server-actions/new")
async def create_server_action(
    request: Request, now: Now, campaign_id: int, user: CurrentUser = Editor
) -> Response:
    form = await request.form()
    values = _form_values(form)
    chosen = [v for v in form.getlist("p.actions") if isinstance(v, str)]
    kind = values.get("action_type") or "update_record"
    error: FieldError | None = None
    try:
        with database(request).transaction() as session:
            campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
            action = campaigns.create_server_action(
                session=session,
                now=now,
                name=values.get("name") or "",
                model=campaign.model,
                action_type=kind,
                payload=_payload(campaign.model, kind, values, chosen),
            )
            created = (action.id, action.name)
    except NurtureError as exc:
        if exc.code == "not_found" and exc.field == "campaign_id":
            raise
        error = FieldError(field=_action_error_field(exc.field, kind), message=exc.message)
    with database(request).read() as session:
        campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
        if error is not None:
            return _action_dialog(request, session, campaign, kind, values, chosen, error, 200)
        server_actions = list(
            session.scalars(select(ServerAction).where(ServerAction.model == campaign.model).order_by(ServerAction.name))
        )
        html = environment().get_template("ui/workflow/_action_select.html").render(
            server_actions=server_actions, selected=str(created[0]), error=None, created=created[1]
        )
    return HTMLResponse(html, headers={"HX-Retarget": "#server-action-picker", "HX-Reswap": "outerHTML", "HX-Trigger": "nurture:action-created", "Cache-Control": "no-store"})
