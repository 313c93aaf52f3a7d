"""Service functions for business records (create, update, archive, delete).

Every function is keyword-only, takes the caller's ``session`` (one transaction: a refusal
raises before anything is flushed, so nothing is half-written) and ``now`` (naive UTC).
The generic functions work for any model in the registry; target models notify the
campaign engine through :mod:`nurture.records.events` in the same transaction.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records import models as m
from nurture.records.catalog import REGISTRY
from nurture.records.events import records_changed, records_deleted
from nurture.records.registry import FieldDef, ModelDef, RegistryError
from nurture.records.validation import (
    InvalidEmail,
    normalize_country_code,
    normalize_email,
    parse_phone,
)
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


def _notify_changed(session: Session, model: ModelDef, ids: Sequence[int], now: datetime) -> None:
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
    _notify_changed(session, mdef, [record_id], now)
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
    _notify_changed(session, mdef, [record_id], now)


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
    _notify_changed(session, mdef, wanted, now)


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


# --------------------------------------------------------------------------- tags


def get_or_create_tags(*, session: Session, names: Iterable[str]) -> list[int]:
    """Ids of the tags named ``names`` (matched case-insensitively), creating missing ones."""
    wanted = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not wanted:
        return []
    for name in wanted:
        if len(name) > 100:
            raise ValidationError(f"tags: tag name too long: {name[:20]!r}…", field="tags")
    lowered = {n.lower() for n in wanted}
    existing: dict[str, int] = {}
    for tag_id, name in session.execute(
        select(m.Tag.id, m.Tag.name).where(func.lower(m.Tag.name).in_(lowered))
    ):
        existing.setdefault(name.lower(), tag_id)
    ids: list[int] = []
    for name in wanted:
        key = name.lower()
        if key not in existing:
            tag = m.Tag(name=name, color=0)
            session.add(tag)
            session.flush()
            existing[key] = tag.id
        ids.append(existing[key])
    return list(dict.fromkeys(ids))


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
    _notify_changed(session, mdef, list(ids), now)


# --------------------------------------------------------------------------- mailing lists


def get_or_create_mailing_list(*, session: Session, name: str, now: datetime) -> int:
    found = session.scalar(select(m.MailingList.id).where(m.MailingList.name == name.strip()))
    if found is not None:
        return int(found)
    return create_record(session=session, model="mailing_list", values={"name": name}, now=now)


def _subscription(session: Session, contact_id: int, list_id: int) -> m.MailingSubscription | None:
    return session.scalar(
        select(m.MailingSubscription).where(
            m.MailingSubscription.contact_id == contact_id,
            m.MailingSubscription.list_id == list_id,
        )
    )


def _check_list_and_contact(session: Session, contact_id: int, list_id: int) -> None:
    if session.get(m.MailingContact, contact_id) is None:
        raise NotFound(f"no mailing contact with id {contact_id}", field="contact")
    if session.get(m.MailingList, list_id) is None:
        raise NotFound(f"no mailing list with id {list_id}", field="list")


def subscribe(*, session: Session, contact_id: int, list_id: int, now: datetime) -> int:
    """Subscribe a mailing contact to a list; an existing subscription is kept as it is
    (an opted-out contact stays opted out: use :func:`resubscribe`). Returns its id."""
    _check_list_and_contact(session, contact_id, list_id)
    sub = _subscription(session, contact_id, list_id)
    if sub is None:
        sub = m.MailingSubscription(
            contact_id=contact_id, list_id=list_id, opted_out=False, subscribed_at=now
        )
        session.add(sub)
        session.flush()
        _notify_changed(session, REGISTRY.get("mailing_contact"), [contact_id], now)
    return int(sub.id)


def opt_out(*, session: Session, contact_id: int, list_id: int, now: datetime) -> int:
    """Record that the contact opted out of the list (creating the subscription if needed)."""
    _check_list_and_contact(session, contact_id, list_id)
    sub = _subscription(session, contact_id, list_id)
    if sub is None:
        sub = m.MailingSubscription(
            contact_id=contact_id, list_id=list_id, subscribed_at=now, opted_out=False
        )
        session.add(sub)
    if not sub.opted_out:
        sub.opted_out = True
        sub.unsubscribed_at = now
        session.flush()
        _notify_changed(session, REGISTRY.get("mailing_contact"), [contact_id], now)
    return int(sub.id)


def resubscribe(*, session: Session, contact_id: int, list_id: int, now: datetime) -> int:
    """Subscribe again after an opt-out (or subscribe for the first time)."""
    _check_list_and_contact(session, contact_id, list_id)
    sub = _subscription(session, contact_id, list_id)
    if sub is None:
        return subscribe(session=session, contact_id=contact_id, list_id=list_id, now=now)
    if sub.opted_out:
        sub.opted_out = False
        sub.unsubscribed_at = None
        sub.subscribed_at = now
        session.flush()
        _notify_changed(session, REGISTRY.get("mailing_contact"), [contact_id], now)
    return int(sub.id)


def is_opted_out(*, session: Session, contact_id: int, list_id: int) -> bool:
    sub = _subscription(session, contact_id, list_id)
    return bool(sub is not None and sub.opted_out)


# --------------------------------------------------------------------------- CRM activities


def schedule_activity(
    *,
    session: Session,
    res_model: str,
    res_id: int,
    activity_type: str,
    summary: str,
    due_date: datetime,
    now: datetime,
    user_id: int | None = None,
    note: str | None = None,
) -> int:
    """Plan a to-do / call / meeting about one record, assigned to a user."""
    target = model_def(res_model)
    if session.get(target.orm, res_id) is None:
        raise NotFound(f"no {target.label.lower()} with id {res_id}", field="res_id")
    values: dict[str, Any] = {
        "res_model": target.name,
        "res_id": res_id,
        "activity_type": activity_type,
        "summary": summary,
        "due_date": due_date,
        "note": note,
    }
    if user_id is not None:
        values["user"] = user_id
    return create_record(session=session, model="crm_activity", values=values, now=now)


def mark_activity_done(*, session: Session, activity_id: int, now: datetime) -> None:
    update_record(
        session=session, model="crm_activity", record_id=activity_id, values={"done": True}, now=now
    )


# --------------------------------------------------------------------------- blacklists


def _email_key(email: str) -> str:
    try:
        return normalize_email(email)
    except InvalidEmail as exc:
        raise ValidationError(
            f"email: invalid email address {email!r}: {exc}", field="email"
        ) from None


BlacklistKind = Literal["email", "phone"]


def _blacklist_table(kind: BlacklistKind) -> tuple[Any, Any]:
    """(ORM class, its value column) of one blacklist."""
    if kind == "email":
        return m.EmailBlacklist, m.EmailBlacklist.email
    return m.PhoneBlacklist, m.PhoneBlacklist.number


def _set_blocked(
    session: Session,
    *,
    kind: BlacklistKind,
    key: str,
    blocked: bool,
    now: datetime,
    reason: str | None,
    source: str,
) -> tuple[int | None, bool]:
    """Block or unblock one normalised value; (row id, whether anything changed).

    A change writes a :class:`~nurture.records.models.BlacklistHistory` row, so the
    history tells who was blocked when, why, and by what (UI, import, bounce, …).
    """
    table, column = _blacklist_table(kind)
    row = session.scalar(select(table).where(column == key))
    if blocked:
        changed = row is None or not row.active
        if row is None:
            row = table(reason=reason, active=True, created_at=now, updated_at=now)
            setattr(row, column.key, key)
            session.add(row)
        else:
            row.active = True
            row.reason = reason if reason is not None else row.reason
            row.updated_at = now
    else:
        if row is None or not row.active:
            return (None if row is None else int(row.id)), False
        row.active = False
        row.updated_at = now
        changed = True
    if changed:
        session.add(
            m.BlacklistHistory(
                kind=kind,
                value=key,
                action="add" if blocked else "remove",
                reason=reason,
                source=source,
                created_at=now,
            )
        )
    session.flush()
    return int(row.id), changed


def blacklist_email(
    *,
    session: Session,
    email: str,
    now: datetime,
    reason: str | None = None,
    source: str = "manual",
) -> int:
    """Block an address from marketing mail (idempotent: one row per address)."""
    row_id, _ = _set_blocked(
        session, kind="email", key=_email_key(email), blocked=True, now=now, reason=reason, source=source
    )
    assert row_id is not None
    return row_id


def unblacklist_email(
    *,
    session: Session,
    email: str,
    now: datetime,
    reason: str | None = None,
    source: str = "manual",
) -> bool:
    """Lift the block; True when the address was blacklisted."""
    _, changed = _set_blocked(
        session, kind="email", key=_email_key(email), blocked=False, now=now, reason=reason, source=source
    )
    return changed


def is_email_blacklisted(*, session: Session, email: str | None) -> bool:
    if not email:
        return False
    try:
        key = normalize_email(email)
    except InvalidEmail:
        return False
    return (
        session.scalar(
            select(m.EmailBlacklist.id).where(
                m.EmailBlacklist.email == key, m.EmailBlacklist.active.is_(True)
            )
        )
        is not None
    )


def blacklisted_emails(*, session: Session, emails: Iterable[str]) -> set[str]:
    """The subset of (normalised) ``emails`` that is blacklisted."""
    keys = list({e for e in emails if e})
    found: set[str] = set()
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        found.update(
            session.scalars(
                select(m.EmailBlacklist.email).where(
                    m.EmailBlacklist.email.in_(chunk), m.EmailBlacklist.active.is_(True)
                )
            )
        )
    return found


def _phone_key(number: str, country_code: str | None) -> str:
    try:
        country = normalize_country_code(country_code)
    except ValueError as exc:
        raise ValidationError(f"country_code: {exc}", field="country_code") from None
    stored, _valid = parse_phone(number, country)
    if not stored or not any(c.isdigit() for c in stored):
        raise ValidationError(f"number: {number!r} is not a phone number", field="number")
    return stored


def blacklist_phone(
    *,
    session: Session,
    number: str,
    now: datetime,
    reason: str | None = None,
    country_code: str | None = None,
    source: str = "manual",
) -> int:
    """Block a number from SMS (stored in E.164 when it parses)."""
    key = _phone_key(number, country_code)
    row_id, _ = _set_blocked(
        session, kind="phone", key=key, blocked=True, now=now, reason=reason, source=source
    )
    assert row_id is not None
    return row_id


def unblacklist_phone(
    *,
    session: Session,
    number: str,
    now: datetime,
    country_code: str | None = None,
    reason: str | None = None,
    source: str = "manual",
) -> bool:
    key = _phone_key(number, country_code)
    _, changed = _set_blocked(
        session, kind="phone", key=key, blocked=False, now=now, reason=reason, source=source
    )
    return changed


def blacklist_history(
    *, session: Session, kind: BlacklistKind, value: str, country_code: str | None = None
) -> list[m.BlacklistHistory]:
    """Every block and unblock of one address or number, oldest first."""
    key = _email_key(value) if kind == "email" else _phone_key(value, country_code)
    return list(
        session.scalars(
            select(m.BlacklistHistory)
            .where(m.BlacklistHistory.kind == kind, m.BlacklistHistory.value == key)
            .order_by(m.BlacklistHistory.created_at, m.BlacklistHistory.id)
        )
    )


def blacklist_file_values(stream: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, value) from a file of one value per line or a CSV (first column).

    A first line that names the column (``email``, ``phone``, ``number``) is skipped.
    """
    for line, row in enumerate(csv.reader(stream), start=1):
        value = row[0].strip() if row else ""
        if line == 1 and value.lower() in {"email", "phone", "number", "mobile"}:
            continue
        if value:
            yield line, value


@dataclass
class BlacklistImport:
    added: int = 0
    already: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def import_blacklist(
    *,
    session: Session,
    kind: BlacklistKind,
    lines: Iterable[tuple[int, str]],
    now: datetime,
    reason: str | None = None,
    country_code: str | None = None,
    chunk_size: int = 1000,
) -> BlacklistImport:
    """Block many values given as (line number, value); bad values are reported by line.

    Works a chunk at a time with one lookup per chunk, so the file is streamed; values
    that are already blocked are counted, not touched.
    """
    result = BlacklistImport()
    table, column = _blacklist_table(kind)
    chunk: dict[str, int] = {}

    def flush() -> None:
        existing = {
            getattr(row, column.key): row
            for row in session.scalars(select(table).where(column.in_(list(chunk))))
        }
        new_keys = [key for key in chunk if key not in existing]
        if new_keys:  # one multi-row INSERT for the values never seen before
            session.execute(
                insert(table),
                [
                    {column.key: key, "reason": reason, "active": True, "created_at": now, "updated_at": now}
                    for key in new_keys
                ],
            )
            session.execute(
                insert(m.BlacklistHistory),
                [
                    {"kind": kind, "value": key, "action": "add", "reason": reason, "source": "import", "created_at": now}
                    for key in new_keys
                ],
            )
            result.added += len(new_keys)
        for key, row in existing.items():
            if row.active:
                result.already += 1
                continue
            _set_blocked(
                session, kind=kind, key=key, blocked=True, now=now, reason=reason, source="import"
            )
            result.added += 1
        chunk.clear()

    for line, raw in lines:
        value = raw.strip()
        if not value:
            continue
        try:
            key = _email_key(value) if kind == "email" else _phone_key(value, country_code)
        except ValidationError as exc:
            result.errors.append((line, exc.message))
            continue
        if key in chunk:
            result.already += 1
            continue
        chunk[key] = line
        if len(chunk) >= chunk_size:
            flush()
    if chunk:
        flush()
    return result


def is_phone_blacklisted(
    *, session: Session, number: str | None, country_code: str | None = None
) -> bool:
    if not number:
        return False
    stored, _valid = parse_phone(number, country_code)
    return (
        session.scalar(
            select(m.PhoneBlacklist.id).where(
                m.PhoneBlacklist.number == stored, m.PhoneBlacklist.active.is_(True)
            )
        )
        is not None
    )
