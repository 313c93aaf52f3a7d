"""Server actions (SPEC §8): the built-in kinds and plugins, registered with the engine.

Importing this package registers every kind (:func:`.base.register_kind`) and loads the
installed plugins (entry-point group ``nurture.actions``, see :mod:`.plugins`); the engine
runs them through the ``action`` executor (:mod:`.executor`, an entry point of group
``nurture.executors``).

Built-in kinds (one module each; payload formats in their docstrings):

* ``update_record`` — set fields, add/remove tags, set-based: :mod:`.update_record`;
* ``add_to_list`` / ``remove_from_list`` — :mod:`.mailing_list`;
* ``crm_activity`` — a to-do, call or meeting for a user taken from a field: :mod:`.crm_activity`;
* ``create_record`` — e.g. a lead from a contact, with a field mapping: :mod:`.create_record`;
* ``blacklist`` — the record's email and/or phone numbers: :mod:`.blacklist`;
* ``webhook`` — a signed JSON POST, private addresses refused: :mod:`.webhook`;
* ``multi`` — several actions in order: :mod:`.multi`;
* ``transactional`` — a transactional email or SMS to the record: :mod:`.transactional`.

Save-time validation: :func:`validate_action` (model, action type, payload) → the payload to
store, or :class:`~nurture.errors.ValidationError` naming the field.
"""

from __future__ import annotations

from nurture.actions import (
    blacklist,
    create_record,
    crm_activity,
    mailing_list,
    multi,
    transactional,
    update_record,
    webhook,
)
from nurture.actions.base import (
    ActionFailed,
    ActionKind,
    ActionSkipped,
    action_types,
    get_kind,
    kinds,
    run_per_record,
    validate_action,
)
from nurture.actions.plugins import load_plugins

BUILTIN_TYPES: tuple[str, ...] = (
    "update_record",
    "add_to_list",
    "remove_from_list",
    "crm_activity",
    "create_record",
    "blacklist",
    "webhook",
    "multi",
    "transactional",
)

PLUGIN_REPORT = load_plugins()

__all__ = [
    "BUILTIN_TYPES",
    "PLUGIN_REPORT",
    "ActionFailed",
    "ActionKind",
    "ActionSkipped",
    "action_types",
    "blacklist",
    "create_record",
    "crm_activity",
    "get_kind",
    "kinds",
    "mailing_list",
    "multi",
    "run_per_record",
    "transactional",
    "update_record",
    "validate_action",
    "webhook",
]
