"""Web UI: the activity dialog of the workflow (issue 14, screen 6).

Routes:

* ``GET /campaigns/{id}/activities/new`` (``parent_id``, ``trigger_type``, ``activity_type``)
  and ``GET /campaigns/{id}/activities/{aid}`` — the dialog;
  ``POST`` to the same addresses saves it (``save=close|new``);
  ``POST /campaigns/{id}/activities/{aid}/delete`` deletes it and its descendants.
* ``GET /campaigns/{id}/activities/records`` — the record picker's options (the previews
  render the message for the record picked: :mod:`.previews`).

Every write goes through the campaign and channel services; the dialog only turns form
fields into their arguments and shows their errors next to the fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture import audience
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns, domains
from nurture.campaigns.activity_types import activity_types
from nurture.campaigns.models import (
    EVENT_TRIGGERS,
    INTERVAL_UNITS,
    NOT_TRIGGERS,
    TRIGGER_PARENT,
    Activity,
    Campaign,
)
from nurture.channels.email import service as email
from nurture.channels.sms import service as sms
from nurture.engine import campaign_changes
from nurture.errors import NotFound, NurtureError, ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.registry import ModelDef
from nurture.templating import TemplateValidationError
from nurture.web.api.common import Now
from nurture.web.security.auth import CurrentUser
from nurture.web.security.csrf import csrf_protect
from nurture.web.ui.action_dialog import server_actions_of
from nurture.web.ui.render import (
    FieldError,
    UiReadSession,
    UiUser,
    database,
    form_values,
    redirect,
    render,
    safe_next,
)
from nurture.web.ui.workflow import TRIGGER_MENU, TYPE_LABELS, Editor, back_url

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

#: service error fields -> form fields of the dialog
FORM_FIELDS = {"domain": "filter", "html": "body_html", "body": "sms_body"}


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
        "activity_type": activity_type if activity_type in activity_types() else "email",
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
        excluded = set(activity_service.descendant_ids(session, activity_id=activity.id))
        others = [a for a in others if a.id not in excluded]
    parent_id = values.get("parent_id") or ""
    parent = next((a for a in others if str(a.id) == parent_id), None)
    base = domains.applied_domain(session, activity=parent) if parent else domains.campaign_domain(campaign)
    try:
        own = audience.parse_domain(values.get("filter") or "[]")
        applied = domains.and_domains(base, own)
        applied_count: int | None = audience.count_matching(
            session, campaign.model, applied, now=now, include_archived=campaign.include_archived
        )
    except NurtureError:
        applied, applied_count = base, None
    server_actions = server_actions_of(session, campaign.model)
    sample = _sample(session, campaign, domains.campaign_domain(campaign), now)
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
        back=back_url(request, campaign.id),
    )


@router.get("/campaigns/{campaign_id}/activities/records")
def record_options(
    request: Request, session: UiReadSession, user: UiUser, now: Now, campaign_id: int, q: str = ""
) -> Response:
    """The record picker: the first 20 records of the campaign's filter matching ``q``."""
    campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
    mdef = REGISTRY.target(campaign.model)
    domain = domains.campaign_domain(campaign)
    if q.strip():
        search: list[Any] = [[mdef.rec_name, "ilike", q.strip()]]
        if mdef.email_field:
            search = ["|", *search, [mdef.email_field, "ilike", q.strip()]]
        domain = domains.and_domains(domain, search)
    options = _sample(session, campaign, domain, now)
    return render(request, "ui/workflow/_record_options.html", {"sample": options})


def _campaign_activity(session: Session, campaign_id: int, activity_id: int) -> Activity:
    activity = activity_service.get_activity(session=session, activity_id=activity_id)
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
        back=back_url(request, campaign.id),
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
        activity = activity_service.add_activity(session=session, now=now, campaign_id=campaign.id, **fields)
    else:
        activity = campaign_changes.edit_activity(session=session, now=now, activity_id=activity_id, **fields)
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
    values = form_values(await request.form())
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
        count = len(activity_service.descendant_ids(session, activity_id=activity_id))
        campaign_changes.delete_activity(session=session, now=now, activity_id=activity_id)
    more = f" and its {count - 1} descendant{'s' if count > 2 else ''}" if count > 1 else ""
    return redirect(request, back, f"Activity “{name}”{more} deleted.")
