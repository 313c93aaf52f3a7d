"""Create a record (``create_record``), e.g. a lead from a contact, with a field mapping.

Payload::

    {"model": "lead",                                  # the model to create
     "values": {"type": "opportunity", "stage": "New"},  # constants
     "mapping": {"name": "name",                       # target field <- source field path
                 "email": "email",
                 "contact": "id",                      # the source record itself
                 "salesperson": "salesperson",
                 "tags": "tags"}}

Mapping rules, checked at save time against the model registry:

* a scalar target field takes a scalar source path (``name``, ``contact.city``);
* a many2one target field takes ``id`` when it points at the source model, or a path ending
  on a to-one relation to the same model (``salesperson`` → ``salesperson``);
* a many2many target field takes a to-many source field to the same model (``tags``);
* every field the new record requires must come from ``values`` or ``mapping``.

The record is created through the record service (validation, E.164 phones, enrolment in
running campaigns); a value it refuses fails that record's trace with the reason. Users
cannot be created by an action.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nurture.actions.base import (
    check_keys,
    payload_of,
    read_path,
    register_kind,
    resolve_path,
    run_per_record,
)
from nurture.campaigns.models import ServerAction
from nurture.engine.executors import DueTrace, ExecutionBatch, Outcome
from nurture.errors import ValidationError
from nurture.records import service as records
from nurture.records.catalog import REGISTRY
from nurture.records.registry import FieldDef, ModelDef, RegistryError
from nurture.records.values import coerce_scalar, is_required

#: models an action may not create
FORBIDDEN_MODELS = frozenset({"user"})


def _writable(target: ModelDef, name: Any, field: str) -> FieldDef:
    if not isinstance(name, str):
        raise ValidationError(f"{field}: field names are text", field=field)
    try:
        fdef = target.field(name)
    except RegistryError as exc:
        raise ValidationError(str(exc.args[0]), field=field) from None
    if fdef.readonly or fdef.type == "one2many":
        raise ValidationError(f"{name!r} on {target.name} cannot be set", field=field)
    return fdef


def _check_constant(target: ModelDef, fdef: FieldDef, value: Any, field: str) -> Any:
    if fdef.type == "many2one":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValidationError(f"{field}: a record id is expected", field=field)
        return value
    if fdef.type == "many2many":
        if not isinstance(value, list) or not all(
            isinstance(v, int | str) and not isinstance(v, bool) for v in value
        ):
            raise ValidationError(f"{field}: a list of ids or names is expected", field=field)
        return value
    if fdef.kind == "phone":
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"{field}: a phone number is text", field=field)
        return value
    try:
        coerce_scalar(target, fdef, value, text=False)
    except ValidationError as exc:
        raise ValidationError(f"values.{exc.message}", field=field) from None
    return value


def _check_mapping(
    source: ModelDef, target: ModelDef, fdef: FieldDef, path: Any, field: str
) -> str:
    if path == "id":
        if fdef.type == "many2one" and fdef.relation == source.name:
            return "id"
        if fdef.type in ("integer", "char", "text"):
            return "id"
        raise ValidationError(
            f"{field}: 'id' (the {source.name} itself) cannot fill {fdef.name!r} "
            f"({fdef.type}{' of ' + fdef.relation if fdef.relation else ''})",
            field=field,
        )
    steps = resolve_path(source, path, field=field)
    for step_model, step in steps[:-1]:
        if step.is_to_many:
            raise ValidationError(
                f"{field}: {step.name!r} on {step_model.name} is a list of records", field=field
            )
    _, last = steps[-1]
    if fdef.type == "many2one":
        ok = last.type == "many2one" and last.relation == fdef.relation
    elif fdef.type == "many2many":
        ok = last.is_to_many and last.relation == fdef.relation and len(steps) == 1
    else:
        ok = not last.is_relation
    if not ok:
        wanted = (
            f"a {fdef.relation} relation" if fdef.is_relation else "a field that is not a relation"
        )
        raise ValidationError(
            f"{field}: {path!r} ({last.type}) cannot fill {fdef.name!r}; it needs {wanted}",
            field=field,
        )
    return str(path).strip()


def validate_payload(model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(payload, {"model", "values", "mapping"})
    source = REGISTRY.get(model)
    name = payload.get("model")
    if not isinstance(name, str) or not name:
        raise ValidationError("model is required: the model of the record to create", field="model")
    if name in FORBIDDEN_MODELS:
        raise ValidationError(f"{name} records cannot be created by an action", field="model")
    try:
        target = REGISTRY.get(name)
    except RegistryError as exc:
        raise ValidationError(str(exc.args[0]), field="model") from None
    values = payload.get("values") or {}
    mapping = payload.get("mapping") or {}
    if not isinstance(values, Mapping):
        raise ValidationError("values takes an object {field: value}", field="values")
    if not isinstance(mapping, Mapping):
        raise ValidationError("mapping takes an object {field: source path}", field="mapping")
    if not values and not mapping:
        raise ValidationError("give the new record's values or a mapping", field="mapping")
    clean_values: dict[str, Any] = {}
    for key, value in values.items():
        field = f"values.{key}"
        fdef = _writable(target, key, field)
        clean_values[key] = _check_constant(target, fdef, value, field)
    clean_mapping: dict[str, str] = {}
    for key, path in mapping.items():
        field = f"mapping.{key}"
        if key in clean_values:
            raise ValidationError(f"{key!r} is both a value and a mapping", field=field)
        fdef = _writable(target, key, field)
        clean_mapping[key] = _check_mapping(source, target, fdef, path, field)
    for fdef in target.fields.values():
        if is_required(target, fdef) and fdef.name not in clean_values and fdef.name not in clean_mapping:
            raise ValidationError(
                f"{target.label} records need {fdef.name!r}: give it in values or mapping",
                field="mapping",
            )
    return {"model": name, "values": clean_values, "mapping": clean_mapping}


def _mapped_value(record: Any, target: ModelDef, fdef: FieldDef, path: str) -> Any:
    if path == "id":
        return int(record.id) if fdef.type == "many2one" or fdef.type == "integer" else str(record.id)
    value = read_path(record, path)
    if fdef.type == "many2one":
        return int(value.id) if value is not None else None
    if fdef.type == "many2many":
        return [int(v.id) for v in value or ()]
    return value


def create_record(batch: ExecutionBatch, action: ServerAction) -> dict[int, Outcome]:
    payload = payload_of(action)
    try:
        target = REGISTRY.get(str(payload.get("model")))
    except RegistryError as exc:
        return {t.id: Outcome("error", str(exc.args[0])) for t in batch.traces}
    values: dict[str, Any] = dict(payload.get("values") or {})
    mapping: dict[str, str] = dict(payload.get("mapping") or {})

    def step(record: Any, trace: DueTrace) -> None:
        row = dict(values)
        for key, path in mapping.items():
            fdef = target.field(key)
            value = _mapped_value(record, target, fdef, path)
            if value is None or value == "":
                continue  # leave the default; a required field is reported by the service
            row[key] = value
        records.create_record(session=batch.session, model=target, values=row, now=batch.now)

    return run_per_record(batch, action, step)


register_kind("create_record", label="Create a record", validate=validate_payload, run=create_record)
