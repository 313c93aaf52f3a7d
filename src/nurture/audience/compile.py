"""Compiling a domain to a SQLAlchemy condition, and counting matches.

The condition is built in negation normal form: ``!`` is pushed down to the leaves, and each
leaf emits its exact two-valued meaning (a negative test on a nullable column says
``OR column IS NULL`` itself), so SQL's three-valued logic never changes a result.
Relations are followed with subqueries, never joins, so a record is counted once however
many related records match: ``EXISTS`` for to-many relations and for a many2one to another
target model, ``fk IN (SELECT id …)`` for a many2one to a lookup table (see :func:`_hop`).
Within an AND/OR, tests on the record's own columns come before subqueries (see
:func:`_cost`). :func:`count_matching` runs without PostgreSQL's JIT (see
:func:`without_jit`).

Text tests that SQLite and PostgreSQL do differently are small constructs compiled per
dialect: case-sensitive ``like`` (SQLite's ``LIKE`` ignores case, so ``instr``/``GLOB``
there), ``ilike`` (ASCII case folding on both: SQLite's ``LIKE``, PostgreSQL's
``lower(x COLLATE "C")``) and ordering of text (code-point order: ``COLLATE "C"``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    String,
    and_,
    false,
    func,
    inspect,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy import text as sql_text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.interfaces import MANYTOONE
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import False_
from sqlalchemy.sql.functions import FunctionElement

from nurture.audience.domain import AND, Branch, Negation
from nurture.audience.validate import (
    IS_SET,
    CheckedNode,
    Condition,
    Constant,
    analyse,
    operand_at,
)
from nurture.records.catalog import REGISTRY
from nurture.records.computed import computed_condition
from nurture.records.registry import FieldDef

ESCAPE = "\\"
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower-case A–Z only: the case folding ``ilike`` uses on every back end."""
    return text.translate(ASCII_LOWER)


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (escape character ``\\``)."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


def like_to_glob(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, ``\\`` escapes) as the equivalent SQLite GLOB pattern."""
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == ESCAPE:
            ch = next(chars, "")
            out.append(_glob_literal(ch))
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        else:
            out.append(_glob_literal(ch))
    return "".join(out)


def _glob_literal(ch: str) -> str:
    return f"[{ch}]" if ch in "*?[" else ch


# -- per-dialect constructs -------------------------------------------------------------


class _BoolFn(FunctionElement[bool]):
    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # already a condition: no "= 1" on SQLite


class text_contains(_BoolFn):  # noqa: N801
    """Case-sensitive substring test."""

    name = "nurture_contains"
    inherit_cache = True


class ascii_ilike(_BoolFn):  # noqa: N801
    """``column`` matches an already lower-cased LIKE pattern, folding A–Z only."""

    name = "nurture_ilike"
    inherit_cache = True


class cs_like(_BoolFn):  # noqa: N801
    """Case-sensitive LIKE pattern (arguments: column, LIKE pattern, GLOB pattern)."""

    name = "nurture_like"
    inherit_cache = True


class not_related(_BoolFn):  # noqa: N801
    """No related record matches (arguments: fk, ``SELECT id … WHERE inner``, and the
    correlated ``EXISTS`` of the same records)."""

    name = "nurture_not_related"
    inherit_cache = True


class c_text(FunctionElement[str]):  # noqa: N801
    """Text in code-point order (for ``<``, ``>`` on text)."""

    type = String()
    name = "nurture_c_text"
    inherit_cache = True


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(arg, **kw) for arg in element.clauses]


@compiles(text_contains)
def _contains_pg(element: text_contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, needle = _args(element, compiler, **kw)
    return f"(strpos({column}, {needle}) > 0)"


@compiles(text_contains, "sqlite")
def _contains_sqlite(element: text_contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, needle = _args(element, compiler, **kw)
    return f"(instr({column}, {needle}) > 0)"


@compiles(ascii_ilike)
def _ilike_pg(element: ascii_ilike, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = _args(element, compiler, **kw)
    return f"(lower({column} COLLATE \"C\") LIKE {pattern} ESCAPE '\\')"


@compiles(ascii_ilike, "sqlite")
def _ilike_sqlite(element: ascii_ilike, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's LIKE folds ASCII letters only, exactly the rule ilike follows.
    column, pattern = _args(element, compiler, **kw)
    return f"({column} LIKE {pattern} ESCAPE '\\')"


@compiles(cs_like)
def _like_pg(element: cs_like, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern, _glob = list(element.clauses)
    return f"({compiler.process(column, **kw)} LIKE {compiler.process(pattern, **kw)} ESCAPE '\\')"


@compiles(cs_like, "sqlite")
def _like_sqlite(element: cs_like, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's LIKE ignores case; GLOB is its case-sensitive matcher.
    column, _pattern, glob = list(element.clauses)
    return f"({compiler.process(column, **kw)} GLOB {compiler.process(glob, **kw)})"


@compiles(not_related)
def _not_related_pg(element: not_related, compiler: SQLCompiler, **kw: Any) -> str:
    # NOT EXISTS plans as an anti-join; NOT IN (subquery) would only stay fast while the
    # subquery's ids fit in work_mem.
    _fk, _ids, related = list(element.clauses)
    return f"(NOT {compiler.process(related, **kw)})"


@compiles(not_related, "sqlite")
def _not_related_sqlite(element: not_related, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite builds the id list once; a correlated NOT EXISTS would run per row.
    fk, ids, _related = list(element.clauses)
    column = compiler.process(fk, **kw)
    return f"({column} IS NULL OR {column} NOT IN {compiler.process(ids, **kw)})"


@compiles(c_text)
def _c_text_pg(element: c_text, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = _args(element, compiler, **kw)
    return f'({column} COLLATE "C")'


@compiles(c_text, "sqlite")
def _c_text_sqlite(element: c_text, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = _args(element, compiler, **kw)
    return column  # the default BINARY collation is code-point order already


# -- compilation ----------------------------------------------------------------------


def compile_domain(
    model: str, domain: str | list[Any] | tuple[Any, ...] | None, *, now: datetime
) -> ColumnElement[bool]:
    """The WHERE condition selecting ``model``'s records that match ``domain``.

    For ``select(orm).where(...)``; values travel as bound parameters only. Relative dates
    are resolved at ``now``. Raises :class:`FilterError` for an invalid domain.
    """
    node = analyse(model, domain)
    if node is None:
        return true()
    return _node(node, False, now)


def _node(node: CheckedNode, negate: bool, now: datetime) -> ColumnElement[bool]:
    if isinstance(node, Negation):
        return _node(node.child, not negate, now)
    if isinstance(node, Branch):
        # Plain column tests first, subqueries last: SQLite evaluates AND/OR left to right
        # and stops early, so a subquery then runs only for rows the cheap tests left open.
        # (PostgreSQL orders the tests by cost itself.) AND and OR commute, so the result
        # is the same.
        children = sorted(node.children, key=_cost)
        parts = [_node(child, negate, now) for child in children]
        conjunction = (node.operator == AND) != negate
        return and_(*parts) if conjunction else or_(*parts)
    if isinstance(node, Constant):
        return true() if node.value != negate else false()
    return _leaf(node, negate, now)


def _cost(node: CheckedNode) -> int:
    """0: a test on the record's own columns; 1: an id list built once (a many2one to a
    lookup table); 2: a correlated subquery run per row."""
    if isinstance(node, Negation):
        return _cost(node.child)
    if isinstance(node, Branch):
        return max(_cost(child) for child in node.children)
    if isinstance(node, Constant):
        return 0
    # A computed field is a subquery too: one unique-index probe per row.
    own = 1 if node.field.computed else 0
    return max([own, *(1 if _id_list(relation) else 2 for _owner, relation in node.hops)])


def _id_list(relation: FieldDef) -> bool:
    """Follow a many2one as ``fk IN (SELECT id …)``: only to lookup tables (users, tags,
    lists, events), whose matching ids are few and cheap to collect once. A many2one to a
    target model (a lead's contact) may match millions of rows, so it is a correlated
    ``EXISTS`` that costs one primary-key probe per row, however selective the rest of the
    query is."""
    return relation.type == "many2one" and not REGISTRY.get(relation.relation or "").is_target


def _leaf(cond: Condition, negate: bool, now: datetime) -> ColumnElement[bool]:
    flip = negate != cond.negative
    if not cond.hops:
        test, null_safe = _scalar(cond, cond.model.orm, now)
        if not flip:
            return test
        if null_safe:
            return not_(test)
        return or_(not_(test), getattr(cond.model.orm, cond.attribute).is_(None))
    # Each hop's target is a fresh alias, so a path that comes back to a table already in
    # the query (a self-relation) never correlates with the wrong row.
    entities: list[Any] = [cond.hops[0][0].orm]
    for _owner, relation in cond.hops:
        entities.append(aliased(REGISTRY.get(relation.relation or "").orm))
    inner: ColumnElement[bool] | None = None
    if not cond.field.is_to_many:
        inner = _scalar(cond, entities[-1], now)[0]
        if isinstance(inner, False_):  # "in []": no related record can match
            return true() if flip else false()
    for index in range(len(cond.hops) - 1, -1, -1):
        relation = cond.hops[index][1]
        outermost_negated = flip and index == 0
        inner = _hop(entities[index], relation, entities[index + 1], inner, outermost_negated)
    assert inner is not None
    if flip and not _id_list(cond.hops[0][1]):
        return not_(inner)
    return inner  # a negated id-list hop is already "no related record matches"


def _hop(
    parent: Any,
    relation: FieldDef,
    target: Any,
    inner: ColumnElement[bool] | None,
    negated: bool = False,
) -> ColumnElement[bool]:
    """``parent`` has a ``relation`` to a ``target`` (an alias) matching ``inner``.

    * many2one to a lookup table: ``fk IN (SELECT id FROM target WHERE inner)``,
      uncorrelated so both back ends evaluate it once; negated (only ever as the
      outermost hop) it is :class:`not_related`, which each back end writes in the form
      it runs fastest;
    * many2one to a target model: ``EXISTS (SELECT 1 FROM target WHERE id = fk AND inner)``
      (see :func:`_id_list`);
    * many2many: ``EXISTS (SELECT 1 FROM link, target WHERE link.owner = parent.id AND
      target.id = link.target AND inner)``;
    * one2many: ``EXISTS (SELECT 1 FROM target WHERE target.fk = parent.id AND inner)``.
    """
    prop = inspect(parent).mapper.get_property(relation.name)
    parent_mapper = prop.parent
    target_mapper = prop.mapper

    def attr(entity: Any, mapper: Any, column: Any) -> Any:
        return getattr(entity, mapper.get_property_by_column(column).key)

    criteria = [] if inner is None else [inner]
    one: ColumnElement[Any] = literal_column("1")
    if prop.direction is MANYTOONE:
        ((local, remote),) = prop.local_remote_pairs
        fk = attr(parent, parent_mapper, local)
        key = attr(target, target_mapper, remote)
        related = select(one).select_from(target).where(key == fk, *criteria).exists()
        if not _id_list(relation):
            return related
        ids = select(key).where(*criteria).scalar_subquery()
        if negated:
            return not_related(fk, ids, related)
        result: ColumnElement[bool] = fk.in_(ids)
        return result
    if prop.secondary is not None:
        link = prop.secondary.alias()
        ((owner_key, owner_link),) = prop.synchronize_pairs
        ((target_key, target_link),) = prop.secondary_synchronize_pairs
        where = [link.c[owner_link.name] == attr(parent, parent_mapper, owner_key)]
        if not criteria:
            return select(one).select_from(link).where(*where).exists()
        where.append(attr(target, target_mapper, target_key) == link.c[target_link.name])
        return select(one).select_from(link, target).where(*where, *criteria).exists()
    ((local, remote),) = prop.local_remote_pairs
    where = [attr(target, target_mapper, remote) == attr(parent, parent_mapper, local), *criteria]
    return select(one).select_from(target).where(*where).exists()


def _scalar(cond: Condition, entity: Any, now: datetime) -> tuple[ColumnElement[bool], bool]:
    """The positive test on the last field of ``entity`` (the model or an alias of it):
    (condition, True when it is never NULL)."""
    op = cond.positive
    value = operand_at(cond, now)
    if cond.field.computed:
        # A computed boolean (``is_blacklisted``): a subquery, never NULL.
        test = computed_condition(cond.field, entity)
        return (test if value else not_(test)), True
    column = getattr(entity, cond.attribute)
    text = cond.value_type in ("char", "text", "selection")
    if cond.value_type == "boolean":
        # An unset boolean counts as false.
        if value:
            return column == true(), False
        return or_(column == false(), column.is_(None)), True
    if op == IS_SET:
        if text:
            return and_(column.is_not(None), column != ""), True
        return column.is_not(None), True
    if op == "=":
        return column == value, False
    if op == "in":
        if not value:
            if cond.has_null:
                return _unset(column, text), True
            return false(), True
        test = column.in_(value)
        if cond.has_null:
            return or_(test, _unset(column, text)), True
        return test, False
    if op in ("<", "<=", ">", ">="):
        left = c_text(column) if text else column
        if op == "<":
            return left < value, False
        if op == "<=":
            return left <= value, False
        if op == ">":
            return left > value, False
        return left >= value, False
    if op == "like":
        return text_contains(column, value), False
    if op == "ilike":
        return ascii_ilike(column, "%" + escape_like(ascii_lower(value)) + "%"), False
    if op == "=ilike":
        return ascii_ilike(column, ascii_lower(value)), False
    if op == "=like":
        return cs_like(column, value, like_to_glob(value)), False
    raise AssertionError(f"unhandled operator {op!r}")  # pragma: no cover


def _unset(column: Any, text: bool) -> ColumnElement[bool]:
    if text:
        return or_(column.is_(None), column == "")
    result: ColumnElement[bool] = column.is_(None)
    return result


# -- archived records and counting ----------------------------------------------------


def active_condition(model: str, *, include_archived: bool) -> ColumnElement[bool]:
    """Excludes archived records (``active`` false) unless ``include_archived``."""
    mdef = REGISTRY.get(model)
    if include_archived or not mdef.has_active:
        return true()
    result: ColumnElement[bool] = mdef.orm.active == true()
    return result


def count_matching(
    session: Session,
    model: str,
    domain: str | list[Any] | tuple[Any, ...] | None,
    *,
    now: datetime,
    include_archived: bool = False,
) -> int:
    """How many records of ``model`` match ``domain`` (the ``#records`` figure)."""
    condition = compile_domain(model, domain, now=now)  # FilterError for a bad model too
    mdef = REGISTRY.get(model)
    statement = (
        select(func.count())
        .select_from(mdef.orm)
        .where(condition, active_condition(model, include_archived=include_archived))
    )
    with without_jit(session):
        return int(session.execute(statement).scalar_one())


@contextmanager
def without_jit(session: Session) -> Iterator[None]:
    """Run the enclosed statements without PostgreSQL's JIT compilation (no-op elsewhere).

    A correlated ``EXISTS`` under ``OR`` is planned as a subplan whose cost estimate
    assumes one run per row, which pushes the plan over ``jit_above_cost``; compiling
    then costs 100-300 ms per execution, more than a count over a million rows takes.
    The setting is transaction-local and restored on the way out.
    """
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    previous = session.execute(
        sql_text("SELECT current_setting('jit'), set_config('jit', 'off', true)")
    ).first()
    yield
    if previous is not None:
        session.execute(sql_text("SELECT set_config('jit', :value, true)"), {"value": previous[0]})
