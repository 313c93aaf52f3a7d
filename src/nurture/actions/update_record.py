"""Update record (``update_record``): set fields and add/remove tags on every record of the
batch, set-based (one UPDATE, one INSERT … SELECT per tag); the server-action service (:mod:`nurture.actions.service`) validates
the payload with the database at hand, this module adds the registry-only check.

Payload: ``{"set": {field: value}, "add_tags": [names], "remove_tags": [names]}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, insert, inspect, literal, select, update

from nurture.actions.base import check_keys, register_kind
from nurture.campaigns.models import ServerAction
from nurture.engine.executors import ExecutionBatch, Outcome
from nurture.errors import ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.models import Tag
from nurture.records.registry import ModelDef, RegistryError
from nurture.records.tags import ensure_tags


def validate_payload(model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(payload, {"set", "add_tags", "remove_tags"})
    mdef = REGISTRY.target(model)
    values = payload.get("set") or {}
    if not isinstance(values, Mapping):
        raise ValidationError("set takes an object {field: value}", field="set")
    for key in values:
        try:
            fdef = mdef.field(key)
        except RegistryError as exc:
            raise ValidationError(str(exc.args[0]), field=f"set.{key}") from None
        if fdef.readonly or fdef.is_to_many:
            raise ValidationError(f"field {key!r} cannot be set by an action", field=f"set.{key}")
    clean: dict[str, Any] = {"set": dict(values)}
    for label in ("add_tags", "remove_tags"):
        names = payload.get(label)
        if not names:
            continue
        tags = mdef.fields.get("tags")
        if tags is None or tags.relation != "tag":
            raise ValidationError(f"{mdef.label} records have no tags", field=label)
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValidationError(f"{label} takes a list of tag names", field=label)
        clean[label] = [n.strip() for n in names]
    if not clean["set"] and len(clean) == 1:
        raise ValidationError("the action changes nothing", field="set")
    return clean


def _tag_link(mdef: ModelDef) -> tuple[Any, Any, Any]:
    """(secondary table, column pointing at the record, column pointing at the tag)."""
    rel = inspect(mdef.orm).relationships["tags"]
    table = rel.secondary
    assert table is not None
    ((_, record_col),) = rel.synchronize_pairs
    ((_, tag_col),) = rel.secondary_synchronize_pairs
    return table, table.c[record_col.name], table.c[tag_col.name]


def update_record(batch: ExecutionBatch, action: ServerAction) -> Mapping[int, Outcome]:
    """Set field values and add/remove tags on all the batch's records, set-based."""
    session = batch.session
    mdef = REGISTRY.get(action.model)
    orm = mdef.orm
    payload: dict[str, Any] = json.loads(action.payload or "{}")
    res_ids = batch.record_ids
    values: dict[str, Any] = {}
    for key, value in (payload.get("set") or {}).items():
        fdef = mdef.field(key)
        column = fdef.fk_column if fdef.type == "many2one" and fdef.fk_column else key
        if fdef.type == "datetime" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        values[column] = value
    if values:
        if "updated_at" in mdef.fields:
            values["updated_at"] = batch.now
        session.execute(
            update(orm)
            .where(orm.id.in_(res_ids))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    add = list(payload.get("add_tags") or [])
    remove = list(payload.get("remove_tags") or [])
    if add or remove:
        table, record_col, tag_col = _tag_link(mdef)
        if add:
            for tag_id in ensure_tags(session, add).values():
                present = exists().where(record_col == orm.id, tag_col == tag_id)
                source = select(orm.id, literal(tag_id)).where(orm.id.in_(res_ids), ~present)
                session.execute(insert(table).from_select([record_col.name, tag_col.name], source))
        if remove:
            tag_ids = select(Tag.id).where(Tag.name.in_(remove))
            session.execute(
                delete(table).where(record_col.in_(res_ids), tag_col.in_(tag_ids))
            )
    return {}


register_kind(
    "update_record",
    label="Update the record",
    validate=validate_payload,
    run=update_record,
)
