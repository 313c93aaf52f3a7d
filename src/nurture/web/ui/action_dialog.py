"""Web UI: the "new server action" sub-dialog of the activity dialog (issue 14, screen 6).

Route: ``GET|POST /campaigns/{id}/server-actions/new`` — the form of the chosen kind; on
success the activity dialog's server-action picker is replaced, the new action selected.

The action goes through the action service; the sub-dialog only turns each kind's fields
into its payload and shows the service's errors next to them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture import actions
from nurture.actions import service as action_service
from nurture.campaigns import campaigns
from nurture.campaigns.models import INTERVAL_UNITS, Campaign, ServerAction
from nurture.errors import NurtureError, ValidationError
from nurture.records.catalog import CRM_ACTIVITY_TYPES, REGISTRY
from nurture.records.registry import ModelDef
from nurture.web.api.common import Now
from nurture.web.security.auth import CurrentUser
from nurture.web.security.csrf import csrf_protect
from nurture.web.ui.render import (
    FieldError,
    UiReadSession,
    database,
    environment,
    form_values,
    render,
)
from nurture.web.ui.workflow import Editor

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

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


def server_actions_of(session: Session, model: str) -> list[ServerAction]:
    """The server actions an activity of a campaign on ``model`` may run, by name (the picker)."""
    return list(
        session.scalars(select(ServerAction).where(ServerAction.model == model).order_by(ServerAction.name))
    )


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
    existing = server_actions_of(session, campaign.model)
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
    values = form_values(form)
    chosen = [v for v in form.getlist("p.actions") if isinstance(v, str)]
    kind = values.get("action_type") or "update_record"
    error: FieldError | None = None
    try:
        with database(request).transaction() as session:
            campaign = campaigns.get_campaign(session=session, campaign_id=campaign_id)
            action = action_service.create_server_action(
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
        server_actions = server_actions_of(session, campaign.model)
        html = environment().get_template("ui/workflow/_action_select.html").render(
            server_actions=server_actions, selected=str(created[0]), error=None, created=created[1]
        )
    return HTMLResponse(html, headers={"HX-Retarget": "#server-action-picker", "HX-Reswap": "outerHTML", "HX-Trigger": "nurture:action-created", "Cache-Control": "no-store"})
