"""The field catalogue the filter editor offers for a model."""

from __future__ import annotations

from typing import Any

from nurture.audience.validate import OPERATORS_BY_TYPE
from nurture.records.catalog import REGISTRY

_BOOLEAN_UI = ("=", "!=")  # "is" / "is not" true/false; is set / is not set are accepted too


def fields_for_ui(model: str) -> list[dict[str, Any]]:
    """One entry per filterable field of ``model``, in registry order.

    Each entry: ``name``, ``label``, ``type``, ``relation`` (the related model for
    relations, which the editor can expand into its own fields), ``operators`` allowed for
    the type, ``selection`` values (empty unless the type is selection), ``readonly``
    (set by Nurture, never written by a create, update or import) and ``computed``
    (no column: computed when a filter runs, such as ``is_blacklisted``). Computed
    fields come after the stored ones.
    """
    mdef = REGISTRY.get(model)
    entries: list[dict[str, Any]] = []
    for fdef in [*mdef.fields.values(), *mdef.computed.values()]:
        operators = _BOOLEAN_UI if fdef.type == "boolean" else OPERATORS_BY_TYPE[fdef.type]
        entries.append(
            {
                "name": fdef.name,
                "label": fdef.label,
                "type": fdef.type,
                "relation": fdef.relation,
                "operators": list(operators),
                "selection": list(fdef.selection),
                "readonly": fdef.readonly,
                "computed": fdef.computed is not None,
            }
        )
    return entries
