"""What the channels' executors share: the batch's records, query chunks, and the failure
types of the traces a batch did not send (``failure_reason``, Odoo's names)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nurture.engine.executors import ExecutionBatch
from nurture.engine.models import Trace
from nurture.records.catalog import REGISTRY
from nurture.records.registry import ModelDef


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
