"""Service functions for business records (create, update, archive, delete).

Every function is keyword-only, takes the caller's ``session`` (one transaction: a refusal
raises before anything is flushed, so nothing is half-written) and ``now`` (naive UTC).
The generic functions work for any model in the registry; target models notify the
campaign engine through :mod:`nurture.records.events` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records import models as m
from nurture.records.catalog import REGISTRY
from nurture.records.events import records_changed, records_deleted
from nurture.records.registry import FieldDef, ModelDef, RegistryError
from nurture.records.tags import get_or_create_tags
from nurture.records.values import (
    apply_phones,
    check_id,
    coerce_scalar,
    column_info,
    is_required,
    validity_column,
)

# --------------------------------------------------------------------------- helpers


def model_def(model: str | ModelDef) -> ModelDef:
    """The registered model, or a ValidationError naming the unknown model."""
    if isinstance(model, ModelDef):
        return model
    try:
        return REGISTRY.get(model)
    except RegistryError as exc:
        raise ValidationError(str(exc), field="model") from None


def notify_changed(session: Session, model: ModelDef, ids: Sequence[int], now: datetime) -> None:
    if model.is_target:
        records_changed(session, model=model.name, ids=list(ids), now=now)


def _field_for_key(model: ModelDef, key: str) -> FieldDef:
    """The field a value key names: a field name, or a many2one's foreign-key column."""
    if key in model.fields:
        return model.fields[key]
    for fdef in model.fields.values():
        if fdef.fk_column == key:
            return fdef
    if key in model.computed:
        raise ValidationError(
            f"{key} is read-only: it is computed (from {', '.join(model.computed[key].depends)}"
            " and the blacklist), never written",
            field=key,
        )
    known = ", ".join(sorted(model.fields))
    raise ValidationError(f"unknown field {key!r} on {model.name} (known: {known})", field=key)


def _find_related_ids(
    session: Session, model: ModelDef, fdef: FieldDef, refs: Iterable[Any]
) -> list[int]:
    """Ids of related records given as ids or (for to-many fields) names."""
    assert fdef.relation is not None
    target = REGISTRY.get(fdef.relation)
    ids: list[int] = []
    names: list[str] = []
    for ref in refs:
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise ValidationError(
                f"{fdef.name}: expected ids or names of {target.label.lower()} records, "
                f"got {ref!r}",
                field=fdef.name,
            )
        if isinstance(ref, int):
            ids.append(check_id(ref, fdef.name))
        elif ref.strip():
            names.append(ref.strip())
    if names:
        if target.name == "tag":
            ids.extend(get_or_create_tags(session=session, names=names))
        else:
            col = target.attr(target.rec_name)
            found: dict[str, int] = {
                name: record_id
                for name, record_id in session.execute(
                    select(col, target.orm.id).where(col.in_(names))
                )
            }
            missing = [n for n in names if n not in found]
            if missing:
                raise ValidationError(
                    f"{fdef.name}: no {target.label.lower()} named {missing[0]!r}",
                    field=fdef.name,
                )
            ids.extend(found[n] for n in names)
    unique = list(dict.fromkeys(ids))
    if unique:
        existing = set(session.scalars(select(target.orm.id).where(target.orm.id.in_(unique))))
        missing_ids = [i for i in unique if i not in existing]
        if missing_ids:
            raise ValidationError(
                f"{fdef.name}: no {target.label.lower()} with id {missing_ids[0]}",
                field=fdef.name,
            )
    return unique


def _prepare(
    session: Session,
    model: ModelDef,
    values: Mapping[str, Any],
    *,
    creating: bool,
    record: Any = None,
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Validate ``values`` into column values and to-many id lists; raise on the first fault."""
    columns: dict[str, Any] = {}
    to_many: dict[str, list[int]] = {}
    for key, value in values.items():
        fdef = _field_for_key(model, key)
        if fdef.readonly:
            raise ValidationError(f"{fdef.name} is read-only", field=fdef.name)
        if fdef.type == "one2many":
            raise ValidationError(
                f"{fdef.name} cannot be written directly on {model.name}", field=fdef.name
            )
        if fdef.type == "many2many":
            if value is None:
                value = []
            if isinstance(value, str | bytes) or not isinstance(value, Iterable):
                raise ValidationError(
                    f"{fdef.name}: expected a list of ids or names", field=fdef.name
                )
            to_many[fdef.name] = _find_related_ids(session, model, fdef, value)
            continue
        if fdef.type == "many2one":
            info = column_info(model, fdef.name)
            if value is None:
                if not info.nullable:
                    raise ValidationError(f"{fdef.name}: a value is required", field=fdef.name)
                columns[info.key] = None
            else:
                columns[info.key] = _find_related_ids(session, model, fdef, [value])[0]
            continue
        columns[fdef.name] = coerce_scalar(model, fdef, value, text=False)
    if creating:
        for fdef in model.fields.values():
            if not is_required(model, fdef):
                continue
            key = column_info(model, fdef.name).key
            if columns.get(key) is None:
                raise ValidationError(f"{fdef.name}: a value is required", field=fdef.name)
    country = getattr(record, "country_code", None) if record is not None else None
    given_phones = {f for f in model.phone_fields if f in columns}
    if record is not None and "country_code" in columns and columns["country_code"] != country:
        # A new country may make a number that was entered without prefix valid.
        for name in model.phone_fields:
            flag = validity_column(model, name)
            current = getattr(record, name, None)
            if name not in columns and current and flag and getattr(record, flag) is False:
                columns[name] = current
                given_phones.add(name)
    apply_phones(model, columns, given=given_phones, country_code=country)
    _check_unique(session, model, columns, record_id=getattr(record, "id", None))
    return columns, to_many


def _check_unique(
    session: Session, model: ModelDef, columns: Mapping[str, Any], *, record_id: int | None
) -> None:
    for key, value in columns.items():
        if value is None or key not in model.fields:
            continue
        if not column_info(model, key).unique:
            continue
        col = model.orm.__table__.c[key]
        query = select(model.orm.id).where(col == value)
        if record_id is not None:
            query = query.where(model.orm.id != record_id)
        if session.scalar(query.limit(1)) is not None:
            raise Conflict(
                f"{key}: a {model.label.lower()} with {key} {value!r} already exists",
                field=key,
            )


def _flush(session: Session, model: ModelDef) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"{model.label}: the change conflicts with existing data ({exc.orig})"
        ) from None


def _set_to_many(
    session: Session, obj: Any, model: ModelDef, to_many: Mapping[str, list[int]]
) -> None:
    for name, ids in to_many.items():
        fdef = model.fields[name]
        assert fdef.relation is not None
        target = REGISTRY.get(fdef.relation).orm
        related = session.scalars(select(target).where(target.id.in_(ids))).all() if ids else []
        setattr(obj, name, list(related))


def _load(session: Session, model: ModelDef, record_id: int) -> Any:
    obj = session.get(model.orm, record_id)
    if obj is None:
        raise NotFound(f"no {model.label.lower()} with id {record_id}", field="id")
    return obj


def _existing_ids(session: Session, model: ModelDef, ids: Sequence[int]) -> list[int]:
    wanted = list(dict.fromkeys(ids))
    found = set(session.scalars(select(model.orm.id).where(model.orm.id.in_(wanted))))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound(f"no {model.label.lower()} with id {missing[0]}", field="id")
    return wanted


# --------------------------------------------------------------------------- generic CRUD


def create_record(
    *, session: Session, model: str | ModelDef, values: Mapping[str, Any], now: datetime
) -> int:
    """Create one record of any registered model; returns its id."""
    mdef = model_def(model)
    columns, to_many = _prepare(session, mdef, values, creating=True)
    table_columns = mdef.orm.__table__.c
    if "created_at" in table_columns:
        columns["created_at"] = now
    if "updated_at" in table_columns:
        columns["updated_at"] = now
    obj = mdef.orm(**columns)
    session.add(obj)
    _set_to_many(session, obj, mdef, to_many)
    _flush(session, mdef)
    record_id = int(obj.id)
    notify_changed(session, mdef, [record_id], now)
    return record_id


def update_record(
    *,
    session: Session,
    model: str | ModelDef,
    record_id: int,
    values: Mapping[str, Any],
    now: datetime,
) -> None:
    """Change the given fields of one record (to-many fields are replaced)."""
    mdef = model_def(model)
    obj = _load(session, mdef, record_id)
    columns, to_many = _prepare(session, mdef, values, creating=False, record=obj)
    for key, value in columns.items():
        setattr(obj, key, value)
    if "updated_at" in mdef.orm.__table__.c:
        obj.updated_at = now
    _set_to_many(session, obj, mdef, to_many)
    _flush(session, mdef)
    notify_changed(session, mdef, [record_id], now)


def get_record(*, session: Session, model: str | ModelDef, record_id: int) -> Any:
    """The ORM object of one record, or NotFound."""
    return _load(session, model_def(model), record_id)


def read_record(*, session: Session, model: str | ModelDef, record_id: int) -> dict[str, Any]:
    """One record as a plain dict: scalars, many2one as id, many2many as lists of ids."""
    mdef = model_def(model)
    obj = _load(session, mdef, record_id)
    out: dict[str, Any] = {}
    for fdef in mdef.fields.values():
        if fdef.type == "many2one" and fdef.fk_column:
            out[fdef.name] = getattr(obj, fdef.fk_column)
        elif fdef.type in ("many2many", "one2many"):
            out[fdef.name] = sorted(r.id for r in getattr(obj, fdef.name))
        else:
            out[fdef.name] = getattr(obj, fdef.name)
    for name in mdef.phone_fields:
        flag = validity_column(mdef, name)
        if flag:
            out[flag] = getattr(obj, flag)
    return out


def _set_active(
    session: Session, model: str | ModelDef, ids: Sequence[int], active: bool, now: datetime
) -> None:
    mdef = model_def(model)
    if not mdef.has_active:
        raise ValidationError(f"{mdef.label} records cannot be archived", field="active")
    wanted = _existing_ids(session, mdef, ids)
    if not wanted:
        return
    values: dict[str, Any] = {"active": active}
    if "updated_at" in mdef.orm.__table__.c:
        values["updated_at"] = now
    session.execute(
        update(mdef.orm).where(mdef.orm.id.in_(wanted)).values(**values),
        execution_options={"synchronize_session": "fetch"},
    )
    notify_changed(session, mdef, wanted, now)


def archive_records(
    *, session: Session, model: str | ModelDef, ids: Sequence[int], now: datetime
) -> None:
    """Archive (``active = False``) the records; campaigns skip them unless told otherwise."""
    _set_active(session, model, ids, False, now)


def unarchive_records(
    *, session: Session, model: str | ModelDef, ids: Sequence[int], now: datetime
) -> None:
    _set_active(session, model, ids, True, now)


def delete_records(
    *, session: Session, model: str | ModelDef, ids: Sequence[int], now: datetime
) -> None:
    """Delete the records (listeners hear about it first, in the same transaction)."""
    mdef = model_def(model)
    wanted = _existing_ids(session, mdef, ids)
    if not wanted:
        return
    if mdef.is_target:
        records_deleted(session, model=mdef.name, ids=wanted, now=now)
        session.execute(
            delete(m.CrmActivity).where(
                m.CrmActivity.res_model == mdef.name, m.CrmActivity.res_id.in_(wanted)
            )
        )
    session.flush()
    doomed = set(wanted)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, mdef.orm) and obj.id in doomed:
            session.expunge(obj)
    try:
        session.execute(
            delete(mdef.orm).where(mdef.orm.id.in_(wanted)),
            execution_options={"synchronize_session": False},
        )
    except IntegrityError as exc:
        raise Conflict(f"{mdef.label} records are still referenced ({exc.orig})") from None


def record_counts(*, session: Session) -> dict[str, int]:
    """Number of rows of each target model."""
    return {
        model.name: int(session.scalar(select(func.count()).select_from(model.orm)) or 0)
        for model in REGISTRY.targets()
    }


def has_records(*, session: Session) -> bool:
    """True when any target record exists (users alone do not count: an administrator
    may be created before the first start loads the demo data)."""
    orms: list[Any] = [model.orm for model in REGISTRY.targets()]
    for orm in orms:
        if session.scalar(select(orm.id).limit(1)) is not None:
            return True
    return False


def add_tags(
    *, session: Session, model: str, ids: Sequence[int], names: Iterable[str], now: datetime
) -> None:
    """Add tags (by name, created when missing) to records of a model with a ``tags`` field."""
    mdef = model_def(model)
    fdef = mdef.fields.get("tags")
    if fdef is None or fdef.type != "many2many":
        raise ValidationError(f"{mdef.label} records have no tags", field="tags")
    tag_ids = get_or_create_tags(session=session, names=names)
    for obj in session.scalars(select(mdef.orm).where(mdef.orm.id.in_(list(ids)))):
        current = {t.id for t in obj.tags}
        for tag_id in tag_ids:
            if tag_id not in current:
                tag = session.get(m.Tag, tag_id)
                if tag is not None:
                    obj.tags.append(tag)
        if "updated_at" in mdef.orm.__table__.c:
            obj.updated_at = now
    session.flush()
    notify_changed(session, mdef, list(ids), now)
