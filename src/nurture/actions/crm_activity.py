"""Create a CRM activity (``crm_activity``): a to-do, call or meeting about the record.

Payload::

    {"activity_type": "call",                 # todo | call | meeting
     "summary": "Call {{ record.name }}",     # placeholders as in SMS templates (≤ 200 chars)
     "note": "Clicked the pricing link",      # optional
     "due_in": 2, "due_unit": "days",         # due date = execution time + interval (default 0 days)
     "user_field": "contact.salesperson",     # optional path to a user, followed from the record
     "fallback_user_id": 7}                   # optional: when the path gives no active user

The activity is assigned to the user the path leads to when that user is active, else the
fallback user (when it exists and is active), else the campaign's responsible, else nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nurture.actions.base import (
    ActionFailed,
    check_keys,
    int_value,
    payload_of,
    read_path,
    register_kind,
    run_per_record,
    text_value,
    to_one_path,
)
from nurture.campaigns.models import INTERVAL_UNITS, ServerAction
from nurture.campaigns.timing import add_interval
from nurture.channels.sms.render import CompiledSms, compile_sms
from nurture.engine.executors import DueTrace, ExecutionBatch, Outcome
from nurture.errors import ValidationError
from nurture.records import crm_activities
from nurture.records.catalog import CRM_ACTIVITY_TYPES
from nurture.records.models import User
from nurture.templating import TemplateRenderError, TemplateValidationError

_KEYS = frozenset(
    {"activity_type", "summary", "note", "due_in", "due_unit", "user_field", "fallback_user_id"}
)


def _check_text_template(model: str, value: str, field: str) -> CompiledSms:
    try:
        return compile_sms(model, value)
    except TemplateValidationError as exc:
        problem = exc.problems[0]
        raise ValidationError(
            f"{field}, line {problem.line}, column {problem.column}: {problem.message}", field=field
        ) from None


def validate_payload(model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(payload, _KEYS)
    activity_type = payload.get("activity_type", "todo")
    if activity_type not in CRM_ACTIVITY_TYPES:
        raise ValidationError(
            f"activity_type is one of {', '.join(CRM_ACTIVITY_TYPES)}", field="activity_type"
        )
    summary = text_value(payload, "summary", required=True, max_length=200)
    assert summary is not None
    _check_text_template(model, summary, "summary")
    note = text_value(payload, "note", max_length=1_600)
    if note:
        _check_text_template(model, note, "note")
    due_in = int_value(payload, "due_in", default=0, maximum=3650)
    due_unit = payload.get("due_unit", "days")
    if due_unit not in INTERVAL_UNITS:
        raise ValidationError(f"due_unit is one of {', '.join(INTERVAL_UNITS)}", field="due_unit")
    user_field = payload.get("user_field")
    if user_field is not None:
        steps = to_one_path(model, user_field, field="user_field")
        last_model, last = steps[-1]
        if last.type != "many2one" or last.relation != "user":
            raise ValidationError(
                f"user_field: {last.name!r} on {last_model.name} is not a user field",
                field="user_field",
            )
        user_field = user_field.strip()
    fallback = int_value(payload, "fallback_user_id", minimum=1)
    return {
        "activity_type": activity_type,
        "summary": summary,
        "note": note,
        "due_in": due_in,
        "due_unit": due_unit,
        "user_field": user_field,
        "fallback_user_id": fallback,
    }


def _active_user(batch: ExecutionBatch, user_id: int | None) -> int | None:
    if user_id is None:
        return None
    user = batch.session.get(User, user_id)
    return int(user.id) if user is not None and user.active else None


def create_activity(batch: ExecutionBatch, action: ServerAction) -> dict[int, Outcome]:
    payload = payload_of(action)
    try:
        summary = _check_text_template(action.model, str(payload.get("summary") or ""), "summary")
        note = payload.get("note")
        note_template = _check_text_template(action.model, str(note), "note") if note else None
    except ValidationError as exc:
        return {t.id: Outcome("error", exc.message) for t in batch.traces}
    due = add_interval(batch.now, int(payload.get("due_in") or 0), str(payload.get("due_unit") or "days"))
    user_field = payload.get("user_field")
    fallback = _active_user(batch, payload.get("fallback_user_id"))
    if fallback is None:
        fallback = _active_user(batch, batch.campaign.responsible_id)

    def step(record: Any, trace: DueTrace) -> None:
        user_id: int | None = None
        if user_field:
            user = read_path(record, str(user_field))
            if user is not None and user.active:
                user_id = int(user.id)
        if user_id is None:
            user_id = fallback
        try:
            text = summary.render_text(record)[:200]
            note_text = note_template.render_text(record) if note_template else None
        except TemplateRenderError as exc:
            raise ActionFailed(str(exc)) from None
        crm_activities.schedule_activity(
            session=batch.session,
            res_model=action.model,
            res_id=int(record.id),
            activity_type=str(payload.get("activity_type") or "todo"),
            summary=text or "(no summary)",
            due_date=due,
            now=batch.now,
            user_id=user_id,
            note=note_text,
        )

    return run_per_record(batch, action, step)


register_kind("crm_activity", label="Create a CRM activity", validate=validate_payload, run=create_activity)
