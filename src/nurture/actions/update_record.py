"""Update record (``update_record``): the engine ships its handler
(:func:`nurture.engine.executors.update_record`) and :mod:`nurture.actions.service` validates it with
the database at hand; this module adds the registry-only check, so that the kind is listed
with the others and sequences (``multi``) can run it.

Payload: ``{"set": {field: value}, "add_tags": [names], "remove_tags": [names]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nurture.actions.base import check_keys, register_kind
from nurture.engine.executors import update_record
from nurture.errors import ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.registry import RegistryError


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


register_kind(
    "update_record",
    label="Update the record",
    validate=validate_payload,
    run=update_record,
    engine_handler=False,  # the engine registers its own handler for this type
)
