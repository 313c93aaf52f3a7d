"""The filter language of SPEC §2: audience and activity filters over target models.

A filter is an Odoo-style *domain* in prefix notation (``"&"``, ``"|"`` binary, ``"!"``
unary, adjacent terms joined by AND) whose leaves are ``[path, operator, value]``. It is
read from JSON or Odoo Python-literal text (:func:`parse_domain`), checked against the
model registry (:func:`validate_domain`), compiled to a SQLAlchemy condition
(:func:`compile_domain`) and evaluated on one loaded record (:func:`evaluate`); the two
evaluations agree on every record. :func:`domain_to_tree` / :func:`tree_to_domain` convert
to and from the editor's tree; :mod:`.explore` answers the editor's other questions (fields
along a relation path, related records to pick, the AND of two filters).

Semantics (chosen to match Odoo where Odoo is defined, and identical in SQL and Python):

* **Unset values.** ``=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``like``, ``ilike``,
  ``=like``, ``=ilike`` never match an unset (NULL) value; their negations ``!=``,
  ``not in``, ``not like``, ``not ilike`` (and ``!`` of any of them) do match it. An ``in``
  list may contain ``false``/``null``, meaning "or not set".
* **is set / is not set.** Odoo's ``!= False`` / ``= False`` are read as ``is set`` /
  ``is not set``. Text and selection values count as set when neither NULL nor empty
  (``""``); other values when not NULL; a to-many relation when it has a related record.
* **Booleans.** An unset boolean counts as false. Boolean leaves are normalised to
  ``= true`` / ``= false`` (``!= true`` -> ``= false``, ``is set`` -> ``= true``,
  ``is not set`` -> ``= false``).
* **Relations.** Paths follow relations with dots. A positive operator on a path matches
  when *some* related record matches (SQL ``EXISTS``, so no duplicate rows). A negative
  operator (``!=``, ``not in``, ``not like``, ``not ilike``, ``is not set``) on a path means
  *no related record matches the positive form*: ``salesperson.name != 'Bob'`` matches
  contacts without a salesperson, ``tags.name not in ['VIP']`` contacts without a VIP tag.
  Boolean leaves are value tests and always positive. Related records match whatever their
  own ``active`` flag. A relation compared with whole numbers is compared by record id
  (many2one on its foreign key); compared with text it follows to the related model's name
  field (``tags ilike 'vip'`` is ``tags.name ilike 'vip'``).
* **Text matching.** ``like`` / ``ilike`` test that the value *contains* the text, taken
  literally (``%`` and ``_`` in the value are not wildcards). ``=like`` / ``=ilike`` take a
  raw LIKE pattern: ``%`` any run, ``_`` one character, ``\\`` escapes the next
  character. ``like`` and ``=like`` are case-sensitive; ``ilike`` and ``=ilike`` fold the
  ASCII letters A-Z only, identically on SQLite, PostgreSQL and in Python (SQLite's own
  LIKE cannot fold other letters). ``<``/``>`` on text compare code points.
* **Dates.** Datetimes are naive UTC, given as ISO 8601 text (an offset is converted to
  UTC) or as ``{"relative": "-7d"}`` (units h, d, w, m; months use calendar arithmetic),
  resolved against the ``now`` passed in.
* **Computed fields.** ``is_blacklisted`` (target models with an email field) and
  ``phone_blacklisted`` (with phone fields) are booleans with no column: an *active*
  blacklist entry holds exactly the record's stored (normalised) address, or one of its
  stored numbers. SQL tests it with ``EXISTS`` on the blacklist's unique index; Python
  looks it up through the record's session, as it loads relations. No address (NULL or
  ``""``) is false. Derived by the registry (:func:`nurture.records.registry.computed_fields`,
  :mod:`nurture.records.computed`).
* **Archived records** (``active`` false) are excluded by :func:`count_matching` unless
  ``include_archived``; :func:`compile_domain` and :func:`evaluate` do not look at ``active``
  (combine with :func:`active_condition`).
"""

from __future__ import annotations

from nurture.audience.compile import (
    active_condition,
    compile_domain,
    count_matching,
    without_jit,
)
from nurture.audience.domain import FilterError, parse_domain
from nurture.audience.evaluate import evaluate
from nurture.audience.explore import (
    and_domains,
    fields_at,
    related_choices,
    relation_model,
)
from nurture.audience.fields import fields_for_ui
from nurture.audience.tree import domain_to_tree, tree_to_domain
from nurture.audience.validate import (
    ALL_OPERATORS,
    OPERATORS_BY_TYPE,
    resolve_relative,
    validate_domain,
)

__all__ = [
    "ALL_OPERATORS",
    "OPERATORS_BY_TYPE",
    "FilterError",
    "active_condition",
    "and_domains",
    "compile_domain",
    "count_matching",
    "domain_to_tree",
    "evaluate",
    "fields_at",
    "fields_for_ui",
    "parse_domain",
    "related_choices",
    "relation_model",
    "resolve_relative",
    "tree_to_domain",
    "validate_domain",
    "without_jit",
]
