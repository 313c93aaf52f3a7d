"""The ``action`` activity type's executor: run the activity's server action on the batch.

Declared to the engine as the entry point ``action`` of group ``nurture.executors``
(pyproject.toml); importing it imports :mod:`nurture.actions`, which registers every built-in
kind and the installed plugins.
"""

from __future__ import annotations

from collections.abc import Mapping

from nurture.actions import get_kind
from nurture.campaigns.models import ServerAction
from nurture.engine.executors import ExecutionBatch, Outcome


def run_server_action(batch: ExecutionBatch) -> Mapping[int, Outcome]:
    """Run the activity's server action; a missing action or unknown type fails every trace."""
    action_id = batch.activity.server_action_id
    action = batch.session.get(ServerAction, action_id) if action_id else None
    if action is None:
        return {t.id: Outcome("error", "No server action set") for t in batch.traces}
    kind = get_kind(action.action_type)
    if kind is None:
        message = f"No handler for server action type {action.action_type!r}"
        return {t.id: Outcome("error", message) for t in batch.traces}
    return kind.run(batch, action)
