"""Server-action services (SPEC §8): create, edit, rotate the secret of and delete a server
action, stored as data (never code).

``update_record`` payloads are checked here against the registry and the database (values
coerced, related records must exist); every other kind by its own validator
(:func:`nurture.actions.base.validate_action`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.actions.base import new_secret, secret_keys, validate_action
from nurture.campaigns.checks import UNSET, check_name, target_model
from nurture.campaigns.models import Activity, ServerAction
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.registry import ModelDef, RegistryError
from nurture.records.tags import tag_names
from nurture.records.values import MAX_ID, MIN_INT, check_id


def _check_action_payload(
    session: Session,
    mdef: ModelDef,
    values: dict[str, Any] | None,
    add_tags: Sequence[str] | None,
    remove_tags: Sequence[str] | None,
) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in (values or {}).items():
        try:
            fdef = mdef.field(key)
        except RegistryError as exc:
            raise ValidationError(str(exc.args[0]), field=f"set.{key}") from exc
        if fdef.readonly or key == "id":
            raise ValidationError(f"field {key!r} is read-only", field=f"set.{key}")
        clean[key] = _coerce(fdef.type, fdef.selection, fdef.nullable, key, value, session, fdef)
    tags: dict[str, list[str]] = {}
    for label, names in (("add_tags", add_tags), ("remove_tags", remove_tags)):
        if not names:
            continue
        field = mdef.fields.get("tags")
        if field is None or field.relation != "tag":
            raise ValidationError(f"{mdef.label} records have no tags", field=label)
        cleaned = [str(n).strip() for n in names if str(n).strip()]
        if not cleaned:
            raise ValidationError("tag names must not be empty", field=label)
        tags[label] = cleaned
    if not clean and not tags:
        raise ValidationError("the action changes nothing", field="set")
    payload: dict[str, Any] = {"set": clean}
    payload.update(tags)
    return payload


def _coerce(
    ftype: str,
    selection: tuple[str, ...],
    nullable: bool,
    key: str,
    value: Any,
    session: Session,
    fdef: Any,
) -> Any:
    field = f"set.{key}"
    if value is None:
        if not nullable and ftype != "many2one":
            raise ValidationError(f"field {key!r} cannot be empty", field=field)
        return None
    if ftype in ("char", "text"):
        if not isinstance(value, str):
            raise ValidationError(f"field {key!r} takes text", field=field)
        return value
    if ftype == "selection":
        if value not in selection:
            raise ValidationError(
                f"{value!r} is not a value of {key!r} ({', '.join(selection)})", field=field
            )
        return value
    if ftype == "boolean":
        if not isinstance(value, bool):
            raise ValidationError(f"field {key!r} takes true or false", field=field)
        return value
    if ftype == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"field {key!r} takes a whole number", field=field)
        if key == "priority" and not 0 <= value <= 3:
            raise ValidationError("priority is between 0 and 3", field=field)
        if not MIN_INT <= value <= MAX_ID:
            raise ValidationError(f"field {key!r}: {value} is out of range", field=field)
        return value
    if ftype == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"field {key!r} takes a number", field=field)
        if not math.isfinite(value):
            raise ValidationError(f"field {key!r} takes a finite number", field=field)
        return float(value)
    if ftype == "datetime":
        if not isinstance(value, str):
            raise ValidationError(f"field {key!r} takes an ISO-8601 date", field=field)
        try:
            datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError(f"{value!r} is not an ISO-8601 date", field=field) from exc
        return value
    if ftype == "many2one":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"field {key!r} takes a record id", field=field)
        check_id(value, field)
        target = REGISTRY.get(fdef.relation)
        if session.get(target.orm, value) is None:
            raise ValidationError(f"{target.label} {value} does not exist", field=field)
        return value
    raise ValidationError(f"field {key!r} ({ftype}) cannot be set by an action", field=field)


def _clean_server_action(
    session: Session,
    model: str,
    action_type: str,
    payload: Any,
    values: dict[str, Any] | None,
    add_tags: Sequence[str] | None,
    remove_tags: Sequence[str] | None,
    previous: dict[str, Any] | None = None,
) -> Any:
    """The checked payload of a server action (shared by create and update); ``previous``
    is the stored payload of an action of the same type being edited (its secrets stay)."""
    mdef = target_model(model)
    shortcut = values is not None or add_tags is not None or remove_tags is not None
    if action_type == "update_record":
        if payload is not None:
            if shortcut:
                raise ValidationError(
                    "give either payload or values/add_tags/remove_tags", field="payload"
                )
            if not isinstance(payload, dict):
                raise ValidationError("the action payload must be an object", field="payload")
            unknown = sorted(set(payload) - {"set", "add_tags", "remove_tags"})
            if unknown:
                raise ValidationError(
                    f"unknown payload key {unknown[0]!r} (known: add_tags, remove_tags, set)",
                    field=str(unknown[0]),
                )
            values = payload.get("set")
            if values is not None and not isinstance(values, dict):
                raise ValidationError("set takes an object {field: value}", field="set")
            add_tags = tag_names(payload.get("add_tags"), "add_tags")
            remove_tags = tag_names(payload.get("remove_tags"), "remove_tags")
        clean = _check_action_payload(session, mdef, values, add_tags, remove_tags)
    else:
        if shortcut:
            raise ValidationError(
                f"actions of type {action_type!r} take a payload", field="payload"
            )
        clean = validate_action(model, action_type, payload, previous=previous)
    return clean


def create_server_action(
    *,
    session: Session,
    now: datetime,
    name: str,
    model: str,
    action_type: str = "update_record",
    payload: Any = None,
    values: dict[str, Any] | None = None,
    add_tags: Sequence[str] | None = None,
    remove_tags: Sequence[str] | None = None,
) -> ServerAction:
    """A server action on ``model``, stored as data (never code).

    ``update_record`` (set field values, add/remove tags) is checked here against the
    registry and the database (values coerced, related records must exist); it takes
    either ``payload`` (``{"set": …, "add_tags": …, "remove_tags": …}``) or the
    ``values``/``add_tags``/``remove_tags`` keywords. Every other kind takes ``payload``,
    checked by the kind's own validator (:func:`nurture.actions.validate_action`).
    """
    clean = _clean_server_action(
        session, model, action_type, payload, values, add_tags, remove_tags
    )
    action = ServerAction(
        name=check_name(name),
        model=model,
        action_type=action_type,
        payload=json.dumps(clean),
        created_at=now,
    )
    session.add(action)
    session.flush()
    return action


def get_server_action(*, session: Session, action_id: int) -> ServerAction:
    action = session.get(ServerAction, action_id)
    if action is None:
        raise NotFound(f"server action {action_id} does not exist", field="id")
    return action


def _activities_using(session: Session, action_id: int) -> list[Activity]:
    return list(
        session.scalars(
            select(Activity).where(Activity.server_action_id == action_id).order_by(Activity.id)
        )
    )


def _using_message(users: list[Activity]) -> str:
    first = users[0]
    others = len(users) - 1
    more = f" and {others} other activit{'y' if others == 1 else 'ies'}" if others else ""
    return f"activity {first.name!r} (id {first.id}, campaign {first.campaign_id}){more}"


def update_server_action(
    *,
    session: Session,
    now: datetime,
    action_id: int,
    name: str = UNSET,
    model: str = UNSET,
    action_type: str = UNSET,
    payload: Any = UNSET,
    values: dict[str, Any] | None = None,
    add_tags: Sequence[str] | None = None,
    remove_tags: Sequence[str] | None = None,
) -> ServerAction:
    """Edit a server action; the payload is checked exactly as :func:`create_server_action`
    checks it. When the model, the type or the payload changes, the resulting payload (the
    stored one when no new one is given) is validated again. The model of an action used by
    an activity cannot change (the activity's campaign targets the old model)."""
    action = get_server_action(session=session, action_id=action_id)
    new_model = action.model if model is UNSET else model
    new_type = action.action_type if action_type is UNSET else action_type
    shortcut = values is not None or add_tags is not None or remove_tags is not None
    if new_model != action.model:
        users = _activities_using(session, action_id)
        if users:
            raise Conflict(
                f"the model cannot change: {_using_message(users)} uses this action",
                field="model",
            )
    stored = json.loads(action.payload or "{}")
    previous = stored if new_type == action.action_type and isinstance(stored, dict) else None
    if payload is UNSET and not shortcut:
        if model is not UNSET or action_type is not UNSET:
            action.payload = json.dumps(
                _clean_server_action(
                    session, new_model, new_type, stored, None, None, None, previous
                )
            )
    else:
        action.payload = json.dumps(
            _clean_server_action(
                session,
                new_model,
                new_type,
                None if payload is UNSET else payload,
                values,
                add_tags,
                remove_tags,
                previous,
            )
        )
    if name is not UNSET:
        action.name = check_name(name)
    action.model = new_model
    action.action_type = new_type
    session.flush()
    return action


def rotate_server_action_secret(
    *, session: Session, now: datetime, action_id: int
) -> tuple[ServerAction, str]:
    """Give the action a new generated secret; returns it (the only time it is shown)."""
    action = get_server_action(session=session, action_id=action_id)
    keys = secret_keys(action.action_type)
    if not keys:
        raise ValidationError(
            f"actions of type {action.action_type!r} have no secret", field="action_type"
        )
    payload = json.loads(action.payload or "{}")
    secret = new_secret()
    payload[keys[0]] = secret
    action.payload = json.dumps(payload)
    session.flush()
    return action, secret


def delete_server_action(*, session: Session, now: datetime, action_id: int) -> None:
    """Delete a server action; refused (:class:`Conflict`) while an activity uses it."""
    action = get_server_action(session=session, action_id=action_id)
    users = _activities_using(session, action_id)
    if users:
        raise Conflict(
            f"server action {action.name!r} is used by {_using_message(users)}",
            field="id",
        )
    session.delete(action)
    session.flush()
