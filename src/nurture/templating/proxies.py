"""Read-only views of records for templates: registered fields only, relations as proxies."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from jinja2 import ChainableUndefined

from nurture.records.registry import ModelDef, Registry


def _read(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


class RecordProxy:
    """Read-only view of one record: registered fields only, relations followed as proxies.

    Jinja reaches it only through :class:`EmailSandbox` which calls :meth:`_nurture_get`; the
    proxy has no public attributes or methods of its own, and everything Python-internal is
    refused by the sandbox before it gets here.
    """

    __slots__ = ("_nurture_model", "_nurture_obj", "_nurture_registry")
    _nurture_model: ModelDef
    _nurture_obj: Any
    _nurture_registry: Registry

    def __init__(self, registry: Registry, model: ModelDef, obj: Any) -> None:
        object.__setattr__(self, "_nurture_registry", registry)
        object.__setattr__(self, "_nurture_model", model)
        object.__setattr__(self, "_nurture_obj", obj)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("records are read-only in templates")

    def _nurture_get(self, name: str) -> Any:
        model: ModelDef = self._nurture_model
        fdef = model.fields.get(name)
        if fdef is None:
            return ChainableUndefined(hint=f"unknown field {name!r} on {model.name}")
        value = _read(self._nurture_obj, name)
        registry: Registry = self._nurture_registry
        if fdef.is_relation and fdef.relation is not None:
            target = registry.get(fdef.relation)
            if fdef.is_to_many:
                return RecordListProxy(registry, target, list(value or ()))
            if value is None:
                return ChainableUndefined(hint=f"{model.name}.{name} is empty")
            return RecordProxy(registry, target, value)
        if value is None:
            return ChainableUndefined(hint=f"{model.name}.{name} is empty")
        return _scalar(value)

    def __getitem__(self, name: object) -> Any:
        if not isinstance(name, str):
            raise KeyError(name)
        return self._nurture_get(name)

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("a record is not a list; loop over one of its to-many fields")

    def __bool__(self) -> bool:
        return self._nurture_obj is not None

    def __str__(self) -> str:
        model: ModelDef = self._nurture_model
        value = _read(self._nurture_obj, model.rec_name)
        return "" if value is None else str(value)

    def __repr__(self) -> str:
        return f"<record {self._nurture_model.name}>"


class RecordListProxy:
    """Read-only view of a to-many relation: iterable, indexable, printable."""

    __slots__ = ("_nurture_items",)
    _nurture_items: tuple[RecordProxy, ...]

    def __init__(self, registry: Registry, model: ModelDef, objs: Sequence[Any]) -> None:
        items = tuple(RecordProxy(registry, model, o) for o in objs)
        object.__setattr__(self, "_nurture_items", items)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("records are read-only in templates")

    def __iter__(self) -> Iterator[RecordProxy]:
        return iter(self._nurture_items)

    def __len__(self) -> int:
        return len(self._nurture_items)

    def __getitem__(self, index: object) -> RecordProxy:
        if not isinstance(index, int) or isinstance(index, bool):
            raise KeyError(index)
        items: tuple[RecordProxy, ...] = self._nurture_items
        return items[index]

    def __bool__(self) -> bool:
        return bool(self._nurture_items)

    def __str__(self) -> str:
        return ", ".join(s for s in (str(i) for i in self._nurture_items) if s)

    def __repr__(self) -> str:
        return "<records>"


def _scalar(value: Any) -> Any:
    if isinstance(value, str | bool | int | float | Decimal | datetime | date):
        return value
    return str(value)


