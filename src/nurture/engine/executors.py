"""Executors: what running an activity means, one per activity type.

An executor receives a batch of traces of one activity (all already checked for expiry,
filter and ``*_not_*`` events, and already marked ``processed`` in the same transaction)
and returns the outcome of the traces that did *not* succeed; traces it does not mention
are processed. It runs inside the batch's transaction (within a savepoint), so its writes
commit with the trace states or not at all; an exception turns every trace of the batch
into ``error``. Email and SMS channels register theirs with :func:`register_executor`.

Exactly once: a trace reaches an executor only from the UPDATE that moved it out of
``scheduled`` under its batch's lease, in the transaction the executor writes in. An
executor that talks to the outside world should therefore only *record* the message
(an outbox row keyed by the trace id, unique) and let a transport send it after commit,
so a rolled-back batch never sent anything and a retried send is recognised by its key.

Set-based executors (like ``update_record``) use :attr:`ExecutionBatch.record_ids`, a
sub-query, and never load the batch; per-message executors read
:attr:`ExecutionBatch.traces`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    delete,
    exists,
    insert,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity, Campaign, ServerAction
from nurture.campaigns.service import ensure_tags
from nurture.engine.models import Trace
from nurture.records.catalog import REGISTRY
from nurture.records.models import Tag
from nurture.records.registry import ModelDef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueTrace:
    id: int
    participant_id: int
    res_id: int
    parent_id: int | None
    schedule_date: datetime | None
    is_test: bool


@dataclass(frozen=True)
class Outcome:
    """A trace that did not succeed: ``error`` or ``canceled``, with the human reason."""

    state: str
    message: str


@dataclass
class ExecutionBatch:
    """The traces of one activity being executed now, in the batch's transaction.

    ``trace_filter`` selects exactly these trace rows, so set-based executors can work with
    sub-queries (:attr:`record_ids`) and never ship ids through Python; per-message
    executors read :attr:`traces`.
    """

    session: Session
    campaign: Campaign
    activity: Activity
    trace_filter: ColumnElement[bool]
    now: datetime
    _traces: list[DueTrace] | None = field(default=None, repr=False)

    @property
    def record_ids(self) -> Select[tuple[int]]:
        """Sub-query of the target record ids of the batch."""
        return select(Trace.res_id).where(self.trace_filter)

    @property
    def traces(self) -> list[DueTrace]:
        if self._traces is None:
            rows = self.session.execute(
                select(
                    Trace.id,
                    Trace.participant_id,
                    Trace.res_id,
                    Trace.parent_id,
                    Trace.schedule_date,
                    Trace.is_test,
                )
                .where(self.trace_filter)
                .order_by(Trace.id)
            ).all()
            self._traces = [DueTrace(*row) for row in rows]
        return self._traces

    @property
    def res_ids(self) -> list[int]:
        return [t.res_id for t in self.traces]


Executor = Callable[[ExecutionBatch], Mapping[int, Outcome]]
ActionHandler = Callable[[ExecutionBatch, ServerAction], Mapping[int, Outcome]]

#: installed executors: entry point name = activity type, value = the executor
EXECUTOR_GROUP = "nurture.executors"

_executors: dict[str, Executor] = {}
_action_handlers: dict[str, ActionHandler] = {}


def register_executor(activity_type: str, executor: Executor) -> Executor:
    """Make ``executor`` run the activities of ``activity_type`` (replaces any previous one)."""
    _executors[activity_type] = executor
    return executor


def get_executor(activity_type: str) -> Executor | None:
    """The executor of ``activity_type``: registered, else the ``nurture.executors`` entry
    point of that name (loaded once)."""
    found = _executors.get(activity_type)
    if found is None:
        for point in entry_points(group=EXECUTOR_GROUP, name=activity_type):
            try:
                found = register_executor(activity_type, point.load())
            except Exception as exc:
                log.warning("executor %s (%s) not loaded: %s", point.name, point.value, exc)
            break
    return found


def register_action_handler(action_type: str, handler: ActionHandler) -> ActionHandler:
    """Make ``handler`` run server actions of ``action_type``."""
    _action_handlers[action_type] = handler
    return handler


def _load_action_kinds() -> None:
    """Import the server action kinds (and plugins) once, so their handlers are registered."""
    global _kinds_loaded
    if not _kinds_loaded:
        _kinds_loaded = True
        try:
            import nurture.actions  # noqa: F401
        except ImportError:  # pragma: no cover
            log.warning("nurture.actions could not be imported; only update_record runs")


_kinds_loaded = False


def run_server_action(batch: ExecutionBatch) -> Mapping[int, Outcome]:
    """The ``action`` activity type: run the activity's server action on the batch's records."""
    action_id = batch.activity.server_action_id
    action = batch.session.get(ServerAction, action_id) if action_id else None
    if action is None:
        return {t.id: Outcome("error", "No server action set") for t in batch.traces}
    if action.action_type not in _action_handlers:
        _load_action_kinds()
    handler = _action_handlers.get(action.action_type)
    if handler is None:
        message = f"No handler for server action type {action.action_type!r}"
        return {t.id: Outcome("error", message) for t in batch.traces}
    return handler(batch, action)


def _tag_link(mdef: ModelDef) -> tuple[Any, Any, Any]:
    """(secondary table, column pointing at the record, column pointing at the tag)."""
    rel = inspect(mdef.orm).relationships["tags"]
    table = rel.secondary
    assert table is not None
    ((_, record_col),) = rel.synchronize_pairs
    ((_, tag_col),) = rel.secondary_synchronize_pairs
    return table, table.c[record_col.name], table.c[tag_col.name]


def update_record(batch: ExecutionBatch, action: ServerAction) -> Mapping[int, Outcome]:
    """Set field values and add/remove tags on all the batch's records, set-based."""
    session = batch.session
    mdef = REGISTRY.get(action.model)
    orm = mdef.orm
    payload: dict[str, Any] = json.loads(action.payload or "{}")
    res_ids = batch.record_ids
    values: dict[str, Any] = {}
    for key, value in (payload.get("set") or {}).items():
        fdef = mdef.field(key)
        column = fdef.fk_column if fdef.type == "many2one" and fdef.fk_column else key
        if fdef.type == "datetime" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        values[column] = value
    if values:
        if "updated_at" in mdef.fields:
            values["updated_at"] = batch.now
        session.execute(
            update(orm)
            .where(orm.id.in_(res_ids))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    add = list(payload.get("add_tags") or [])
    remove = list(payload.get("remove_tags") or [])
    if add or remove:
        table, record_col, tag_col = _tag_link(mdef)
        if add:
            for tag_id in ensure_tags(session, add).values():
                present = exists().where(record_col == orm.id, tag_col == tag_id)
                source = select(orm.id, literal(tag_id)).where(orm.id.in_(res_ids), ~present)
                session.execute(insert(table).from_select([record_col.name, tag_col.name], source))
        if remove:
            tag_ids = select(Tag.id).where(Tag.name.in_(remove))
            session.execute(
                delete(table).where(record_col.in_(res_ids), tag_col.in_(tag_ids))
            )
    return {}


register_executor("action", run_server_action)
register_action_handler("update_record", update_record)
