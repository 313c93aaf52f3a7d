"""What the channels' executors share (:func:`message_executor`): the batch's template and
records, query chunks, the traces refused (:class:`MessageBatch`) and their failure types
(``failure_reason``, Odoo's names), the insert of the queued messages."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from nurture.channels.activity_templates import ActivityTemplates, TemplateRow
from nurture.engine.executors import ExecutionBatch, Outcome
from nurture.engine.models import Trace
from nurture.records.catalog import REGISTRY
from nurture.records.registry import ModelDef

M = TypeVar("M", bound=TemplateRow)


def chunks(values: list[Any], size: int = 900) -> Iterable[list[Any]]:
    """``values`` in parts of ``size`` (the bound-parameter limit of an ``IN``)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def batch_records(batch: ExecutionBatch) -> tuple[ModelDef, dict[int, Any]]:
    """The campaign's target model and the batch's records by id (one query)."""
    mdef = REGISTRY.target(batch.campaign.model)
    orm = mdef.orm
    loaded = {r.id: r for r in batch.session.scalars(select(orm).where(orm.id.in_(batch.record_ids)))}
    return mdef, loaded


def set_failure_types(session: Session, failure: Mapping[int, str]) -> None:
    """Store each trace's failure type (trace id → type), one statement per type."""
    by_type: dict[str, list[int]] = {}
    for trace_id, failure_type in failure.items():
        by_type.setdefault(failure_type, []).append(trace_id)
    for failure_type, ids in by_type.items():
        for part in chunks(ids):
            session.execute(
                update(Trace)
                .where(Trace.id.in_(part))
                .values(failure_reason=failure_type)
                .execution_options(synchronize_session=False)
            )


@dataclass
class MessageBatch(Generic[M]):
    """One batch of a message step: the activity's template, the records, and the traces
    refused so far (their outcomes and failure types)."""

    batch: ExecutionBatch
    template: M
    mdef: ModelDef
    loaded: dict[int, Any]
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    failure: dict[int, str] = field(default_factory=dict)

    def refuse(self, trace_id: int, message: str, failure_type: str | None = None) -> None:
        """Not sent: the trace is ``canceled`` with ``message`` (and ``failure_type``)."""
        self.outcomes[trace_id] = Outcome("canceled", message)
        if failure_type is not None:
            self.failure[trace_id] = failure_type

    def error(self, trace_id: int, message: str) -> None:
        """Cannot be sent: the trace is ``error`` with ``message``."""
        self.outcomes[trace_id] = Outcome("error", message[:1000])


def message_executor(
    templates: ActivityTemplates[M],
    model: Any,
    no_template: str,
    queue: Callable[[MessageBatch[M]], list[dict[str, Any]]],
) -> Callable[[ExecutionBatch], dict[int, Outcome]]:
    """The executor of a message step: the batch's template (every trace ``error`` with
    ``no_template`` without one) and records, then ``queue`` checks and composes (refusing
    traces on the :class:`MessageBatch`) and returns the ``model`` rows to insert
    ``queued``; the refused traces get their failure types. Never talks to the network."""

    def execute(batch: ExecutionBatch) -> dict[int, Outcome]:
        session = batch.session
        if not batch.traces:
            return {}
        template = templates.for_activity(session=session, activity_id=batch.activity.id)
        if template is None:
            return {t.id: Outcome("error", no_template) for t in batch.traces}
        mdef, loaded = batch_records(batch)
        work = MessageBatch(batch, template, mdef, loaded)
        rows = queue(work)
        if rows:
            session.execute(insert(model), rows)
        set_failure_types(session, work.failure)
        return work.outcomes

    return execute
