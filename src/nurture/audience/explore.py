"""What a filter editor asks besides the count: the fields at the end of a relation path,
records of a related model to pick by name and the AND of two filters. (The records a
filter matches are listed by :func:`nurture.audience.listing.list_page`.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nurture.audience.domain import FilterError, make_and, parse_domain, serialise, to_tree
from nurture.audience.fields import fields_for_ui
from nurture.audience.search import RecordRef, search_records
from nurture.records.catalog import REGISTRY
from nurture.records.registry import ModelDef, RegistryError

Domain = str | list[Any] | tuple[Any, ...] | None
MAX_CHOICES = 50


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
    now: datetime,
    limit: int = 20,
) -> list[RecordRef]:
    """Records of the model that relation ``path`` points to, for a filter's value:
    with ``ids`` those records (to name the ids a filter holds), else the ones whose name
    or email contains ``query`` (:func:`nurture.audience.search.search_records`)."""
    if not path:
        raise FilterError("a relation path is needed to pick related records", field="path")
    target = relation_model(model, path)
    domain: list[Any] | None = None
    if ids is not None:
        domain = [["id", "in", [int(i) for i in ids][:MAX_CHOICES]]]
        query = ""
    return search_records(
        session, model=target.name, text=query, now=now, domain=domain,
        limit=max(1, min(limit, MAX_CHOICES)),
    )  # fmt: skip


def and_domains(*domains: Domain) -> list[Any]:
    """The canonical domain matching what every one of ``domains`` matches (``None`` and
    ``[]`` add no condition). Each is read like :func:`parse_domain` (JSON or Odoo text)."""
    nodes = [node for d in domains if (node := to_tree(parse_domain(d))) is not None]
    if not nodes:
        return []
    return serialise(make_and(nodes))
