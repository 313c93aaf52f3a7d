"""The model registry: each model declares its fields once, everything else reads them.

The filter language, placeholders, the unicity field, CSV import/export and server actions
look fields up here, so a newly registered target model works with all of them without
further code. Field types are read off the SQLAlchemy mapping; a registration adds only
what the mapping cannot tell (labels, selection values, which model a relation points to,
which fields are hidden).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Boolean, DateTime, Float, Integer, Numeric, String, Text, inspect
from sqlalchemy.orm import InstrumentedAttribute, RelationshipProperty
from sqlalchemy.orm.interfaces import MANYTOMANY, MANYTOONE, ONETOMANY

FieldType = Literal[
    "char",
    "text",
    "integer",
    "float",
    "boolean",
    "datetime",
    "selection",
    "many2one",
    "one2many",
    "many2many",
]
SCALAR_TYPES: frozenset[str] = frozenset(
    {"char", "text", "integer", "float", "boolean", "datetime", "selection"}
)
RELATION_TYPES: frozenset[str] = frozenset({"many2one", "one2many", "many2many"})


class RegistryError(LookupError):
    """An unknown model, field or path; the message names it."""


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: FieldType
    label: str
    relation: str | None = None  # registry name of the related model
    selection: tuple[str, ...] = ()
    required: bool = False
    readonly: bool = False
    nullable: bool = True
    fk_column: str | None = None  # many2one: the local foreign-key attribute
    kind: str | None = None  # semantic hint: "email", "phone"
    #: computed fields (no column): what they compute, e.g. ``"email_blacklisted"``
    computed: str | None = None
    depends: tuple[str, ...] = ()  # computed fields: the fields they are computed from

    @property
    def is_relation(self) -> bool:
        return self.type in RELATION_TYPES

    @property
    def is_to_many(self) -> bool:
        return self.type in {"one2many", "many2many"}


@dataclass
class ModelDef:
    name: str
    label: str
    orm: type[Any]
    fields: dict[str, FieldDef]
    is_target: bool = False
    rec_name: str = "name"
    email_field: str | None = None
    phone_fields: tuple[str, ...] = ()
    has_active: bool = False
    #: Computed, read-only fields (see :func:`computed_fields`). They have no column, so
    #: they are not in ``fields``: only the filter language and the field catalogue offer
    #: them (``Registry.resolve_path(..., computed=True)``).
    computed: dict[str, FieldDef] = field(default_factory=dict)

    @property
    def default_unicity_field(self) -> str:
        """SPEC §3: email where the model has one, else the record id."""
        return self.email_field or "id"

    def field(self, name: str) -> FieldDef:
        try:
            return self.fields[name]
        except KeyError:
            known = ", ".join(sorted(self.fields))
            raise RegistryError(
                f"unknown field {name!r} on {self.name} (known fields: {known})"
            ) from None

    def filter_field(self, name: str) -> FieldDef:
        """A stored or computed field (the fields a filter may test)."""
        found = self.fields.get(name) or self.computed.get(name)
        if found is None:
            known = ", ".join(sorted([*self.fields, *self.computed]))
            raise RegistryError(f"unknown field {name!r} on {self.name} (known fields: {known})")
        return found

    def attr(self, name: str) -> InstrumentedAttribute[Any]:
        """The ORM attribute of field ``name``."""
        self.field(name)
        attribute: InstrumentedAttribute[Any] = getattr(self.orm, name)
        return attribute

    def scalar_fields(self) -> Iterator[FieldDef]:
        return (f for f in self.fields.values() if not f.is_relation)


@dataclass
class Registry:
    models: dict[str, ModelDef] = field(default_factory=dict)
    _by_table: dict[str, str] = field(default_factory=dict)

    def register(self, model: ModelDef) -> ModelDef:
        if model.name in self.models:
            raise RegistryError(f"model {model.name!r} is already registered")
        self.models[model.name] = model
        self._by_table[model.orm.__tablename__] = model.name
        return model

    def get(self, name: str) -> ModelDef:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise RegistryError(f"unknown model {name!r} (known models: {known})") from None

    def target(self, name: str) -> ModelDef:
        model = self.get(name)
        if not model.is_target:
            targets = ", ".join(m.name for m in self.targets())
            raise RegistryError(f"{name!r} is not a campaign target (targets: {targets})")
        return model

    def targets(self) -> list[ModelDef]:
        return [m for m in self.models.values() if m.is_target]

    def model_for_orm(self, orm: type[Any]) -> ModelDef:
        return self.get(self._by_table[orm.__tablename__])

    def resolve_path(
        self, model: str | ModelDef, path: str, *, computed: bool = False
    ) -> list[tuple[ModelDef, FieldDef]]:
        """Follow a dotted path (``subscriptions.list.name``) to its steps.

        Every step but the last must be a relation. With ``computed`` the last step may be
        a computed field (``contact.is_blacklisted``). Raises :class:`RegistryError` naming
        the first part of the path that does not exist.
        """
        current = self.get(model) if isinstance(model, str) else model
        if not path:
            raise RegistryError("empty field path")
        steps: list[tuple[ModelDef, FieldDef]] = []
        parts = path.split(".")
        for index, part in enumerate(parts):
            try:
                fdef = current.filter_field(part) if computed else current.field(part)
            except RegistryError as exc:
                raise RegistryError(f"in path {path!r}: {exc}") from None
            steps.append((current, fdef))
            if index < len(parts) - 1:
                if not fdef.is_relation or fdef.relation is None:
                    raise RegistryError(
                        f"in path {path!r}: {part!r} on {current.name} is a {fdef.type} "
                        "field, not a relation, so it cannot be followed"
                    )
                current = self.get(fdef.relation)
        return steps


def _scalar_type(column_type: Any) -> FieldType:
    if isinstance(column_type, Boolean):
        return "boolean"
    if isinstance(column_type, Integer):
        return "integer"
    if isinstance(column_type, Float | Numeric):
        return "float"
    if isinstance(column_type, Text):
        return "text"
    if isinstance(column_type, String):
        return "char"
    if isinstance(column_type, DateTime):
        return "datetime"
    impl = getattr(column_type, "impl", None)
    if impl is not None:
        return _scalar_type(impl if not isinstance(impl, type) else impl())
    raise RegistryError(f"unsupported column type {column_type!r}")


def model_from_orm(
    name: str,
    orm: type[Any],
    *,
    label: str,
    relations: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
    selections: Mapping[str, Iterable[str]] | None = None,
    hidden: Iterable[str] = (),
    readonly: Iterable[str] = ("id", "created_at", "updated_at"),
    kinds: Mapping[str, str] | None = None,
    is_target: bool = False,
    rec_name: str = "name",
) -> ModelDef:
    """Describe ``orm`` from its mapping. ``relations`` maps relationship attributes to models."""
    labels = dict(labels or {})
    selection_values: dict[str, tuple[str, ...]] = {
        k: tuple(v) for k, v in (selections or {}).items()
    }
    kinds = dict(kinds or {})
    hidden_set = set(hidden)
    readonly_set = set(readonly)
    mapper = inspect(orm)
    fields: dict[str, FieldDef] = {}
    fk_attrs: dict[str, str] = {}
    for rel in mapper.relationships:
        if rel.key in hidden_set:
            continue
        if rel.key not in relations:
            raise RegistryError(f"{name}: relation {rel.key!r} needs a target model in relations")
        rtype = _relation_type(rel)
        fk_column = None
        if rtype == "many2one":
            (local,) = rel.local_columns
            fk_column = mapper.get_property_by_column(local).key
            fk_attrs[fk_column] = rel.key
        fields[rel.key] = FieldDef(
            name=rel.key,
            type=rtype,
            label=labels.get(rel.key, _humanise(rel.key)),
            relation=relations[rel.key],
            readonly=rel.key in readonly_set,
            fk_column=fk_column,
        )
    for prop in mapper.column_attrs:
        key = prop.key
        if key in hidden_set or key in fk_attrs:
            continue
        column = prop.columns[0]
        ftype: FieldType = "selection" if key in selection_values else _scalar_type(column.type)
        fields[key] = FieldDef(
            name=key,
            type=ftype,
            label=labels.get(key, "ID" if key == "id" else _humanise(key)),
            selection=selection_values.get(key, ()),
            required=not column.nullable and column.default is None and key not in readonly_set,
            readonly=key in readonly_set,
            nullable=bool(column.nullable),
            kind=kinds.get(key),
        )
    ordered = dict(sorted(fields.items(), key=lambda kv: (kv[0] != "id", kv[0] != rec_name)))
    email_field = next((f for f, k in kinds.items() if k == "email"), None)
    phone_fields = tuple(f for f, k in kinds.items() if k == "phone")
    return ModelDef(
        name=name,
        label=label,
        orm=orm,
        fields=ordered,
        is_target=is_target,
        rec_name=rec_name,
        email_field=email_field,
        phone_fields=phone_fields,
        has_active="active" in fields,
        computed=computed_fields(name, fields, email_field, phone_fields) if is_target else {},
    )


EMAIL_BLACKLISTED = "email_blacklisted"
PHONE_BLACKLISTED = "phone_blacklisted"


def computed_fields(
    model: str,
    fields: Mapping[str, FieldDef],
    email_field: str | None,
    phone_fields: tuple[str, ...],
) -> dict[str, FieldDef]:
    """The computed fields a target model gets from its email and phone fields.

    * ``is_blacklisted`` (Odoo's field of the same name), with an email field: the stored
      (normalised) address is on the email blacklist, active entries only;
    * ``phone_blacklisted``, with phone fields: one of the stored numbers (E.164) is on
      the phone blacklist, active entries only.

    A record without an address or number is not blacklisted. Both are read-only booleans;
    how they are computed (SQL and Python alike) is in :mod:`nurture.records.computed`.
    """
    found: dict[str, FieldDef] = {}
    if email_field is not None:
        found["is_blacklisted"] = FieldDef(
            name="is_blacklisted",
            type="boolean",
            label="Blacklisted",
            readonly=True,
            nullable=False,
            computed=EMAIL_BLACKLISTED,
            depends=(email_field,),
        )
    if phone_fields:
        found["phone_blacklisted"] = FieldDef(
            name="phone_blacklisted",
            type="boolean",
            label="Phone blacklisted",
            readonly=True,
            nullable=False,
            computed=PHONE_BLACKLISTED,
            depends=phone_fields,
        )
    for name in found:
        if name in fields:
            raise RegistryError(f"{model}: field {name!r} clashes with a computed field")
    return found


def _relation_type(rel: RelationshipProperty[Any]) -> FieldType:
    if rel.direction is MANYTOONE:
        return "many2one"
    if rel.direction is ONETOMANY:
        return "one2many"
    if rel.direction is MANYTOMANY:
        return "many2many"
    raise RegistryError(f"unsupported relationship direction {rel.direction!r}")


def _humanise(key: str) -> str:
    return key.replace("_", " ").capitalize()
