"""What a filter editor asks besides the count: the fields at the end of a relation path,
records of a related model to pick by name, the AND of two filters and the first records a
filter matches. Shared by the web UI's filter builder and any other client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.audience.compile import active_condition, compile_domain, without_jit
from nurture.audience.domain import FilterError, make_and, parse_domain, serialise, to_tree
from nurture.audience.fields import fields_for_ui
from nurture.records.catalog import REGISTRY
from nurture.records.registry import ModelDef, RegistryError

Domain = str | list[Any] | tuple[Any, ...] | None
MAX_CHOICES = 50
MAX_RECORDS = 200
_NO_DATES = datetime(2000, 1, 1)  # the pick-list domains hold no relative date


def relation_model(model: str, path: str) -> ModelDef:
    """The model a relation path leads to (``model`` itself for an empty path).

    ``relation_model("contact", "tags")`` is the tag model. Raises :class:`FilterError` naming
    the unknown model or field, or the step that is not a relation.
    """
    try:
        current = REGISTRY.get(model)
        if not path:
            return current
        steps = REGISTRY.resolve_path(current, path)
    except RegistryError as exc:
        raise FilterError(str(exc).strip("\"'"), field=path or "model") from None
    last = steps[-1][1]
    if not last.is_relation or last.relation is None:
        raise FilterError(
            f"{path}: {last.label} is a {last.type} field, not a relation; it has no sub-fields",
            field=path,
        )
    return REGISTRY.get(last.relation)


def fields_at(model: str, path: str = "") -> tuple[ModelDef, list[dict[str, Any]]]:
    """The model at the end of ``path`` and the fields a filter may test on it
    (:func:`fields_for_ui`): ``fields_at("lead", "contact")`` lists the contact's fields."""
    target = relation_model(model, path)
    return target, fields_for_ui(target.name)


def related_choices(
    session: Session,
    *,
    model: str,
    path: str,
    query: str = "",
    ids: list[int] | None = None,
    limit: int = 20,
) -> list[tuple[int, str]]:
    """Records of the model that relation ``path`` points to, as ``(id, name)`` by name.

    With ``ids``: those records (to show the names of ids already in a filter); else the
    ones whose name contains ``query`` (ASCII case folded, like ``ilike``), at most
    ``limit``. Archived records are included: a filter may name them.
    """
    target = relation_model(model, path)
    if not path:
        raise FilterError("a relation path is needed to pick related records", field="path")
    limit = max(1, min(limit, MAX_CHOICES))
    name_field = target.fields.get(target.rec_name)
    rec_name = target.rec_name if name_field is not None else "id"
    if ids is not None:
        domain: list[Any] = [["id", "in", [int(i) for i in ids][:MAX_CHOICES]]]
    elif not query.strip():
        domain = []
    elif name_field is not None and name_field.type in ("char", "text"):
        domain = [[rec_name, "ilike", query.strip()]]
    elif query.strip().isdigit():
        domain = [["id", "=", int(query.strip())]]
    else:
        return []
    orm = target.orm
    order = getattr(orm, rec_name) if name_field is not None else orm.id
    statement = (
        select(orm.id, getattr(orm, rec_name))
        .where(compile_domain(target.name, domain, now=_NO_DATES))
        .order_by(order, orm.id)
        .limit(limit)
    )
    return [(int(i), _label(target, rec_name, name)) for i, name in session.execute(statement)]


def _label(target: ModelDef, rec_name: str, value: Any) -> str:
    if rec_name == "id" or value is None or value == "":
        return f"{target.label} #{value}" if rec_name == "id" else f"{target.label} (no name)"
    return str(value)


def and_domains(*domains: Domain) -> list[Any]:
    """The canonical domain matching what every one of ``domains`` matches (``None`` and
    ``[]`` add no condition). Each is read like :func:`parse_domain` (JSON or Odoo text)."""
    nodes = [node for d in domains if (node := to_tree(parse_domain(d))) is not None]
    if not nodes:
        return []
    return serialise(make_and(nodes))


def first_matching(
    session: Session,
    *,
    model: str,
    domain: Domain,
    now: datetime,
    limit: int = 20,
    include_archived: bool = False,
) -> list[Any]:
    """The first ``limit`` records of ``model`` (ORM objects, by id) that ``domain``
    matches, archived ones only with ``include_archived`` — the records behind #records."""
    condition = compile_domain(model, domain, now=now)  # FilterError for a bad model too
    mdef = REGISTRY.get(model)
    statement = (
        select(mdef.orm)
        .where(condition, active_condition(model, include_archived=include_archived))
        .order_by(mdef.orm.id)
        .limit(max(1, min(limit, MAX_RECORDS)))
    )
    with without_jit(session):
        return list(session.scalars(statement))
