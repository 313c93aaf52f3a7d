"""Run several server actions in order (``multi``).

Payload: ``{"actions": [3, 5, 8]}`` — ids of other server actions of the same model (reused,
not copied: editing one changes every sequence that runs it).

Each step runs on the traces still standing: a trace whose step fails (``error``) or is
skipped (``canceled``) keeps that outcome, with the step named in the reason, and is left
out of the later steps; the writes of the steps it already passed stay. A step that raises
fails all the traces it was given and rolls back its own writes only. Sequences may
contain sequences, up to a depth of 5, never themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from nurture.actions.base import get_kind, payload_of, register_kind
from nurture.actions.update_record import update_record
from nurture.campaigns.models import ServerAction
from nurture.engine.executors import DueTrace, ExecutionBatch, Outcome
from nurture.engine.models import Trace
from nurture.errors import ValidationError
from nurture.records.values import MAX_ID

MAX_STEPS = 20
MAX_DEPTH = 5
_running: ContextVar[tuple[int, ...]] = ContextVar("nurture_multi_running", default=())


def validate_payload(model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    for key in payload:
        if key != "actions":
            raise ValidationError(f"unknown payload key {key!r} (known: actions)", field=str(key))
    ids = payload.get("actions")
    if not isinstance(ids, list) or not ids:
        raise ValidationError("actions takes a list of server action ids", field="actions")
    if len(ids) > MAX_STEPS:
        raise ValidationError(f"at most {MAX_STEPS} actions in a sequence", field="actions")
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
            raise ValidationError(f"actions: {value!r} is not a server action id", field="actions")
    return {"actions": list(ids)}


def _handler(action_type: str) -> Any:
    kind = get_kind(action_type)
    if kind is not None:
        return kind.run
    if action_type == "update_record":
        return update_record
    return None


def _sub_batch(batch: ExecutionBatch, traces: list[DueTrace]) -> ExecutionBatch:
    """The same batch narrowed to ``traces`` (set-based handlers read its trace filter)."""
    return dataclasses.replace(
        batch, trace_filter=Trace.id.in_([t.id for t in traces]), _traces=list(traces)
    )


def run_multi(batch: ExecutionBatch, action: ServerAction) -> dict[int, Outcome]:
    payload = payload_of(action)
    running = _running.get()
    if action.id in running:
        return {t.id: Outcome("error", f"Sequence {action.name!r} runs itself") for t in batch.traces}
    if len(running) >= MAX_DEPTH:
        return {t.id: Outcome("error", "Sequences nested too deep") for t in batch.traces}
    session = batch.session
    outcomes: dict[int, Outcome] = {}
    remaining = list(batch.traces)
    token = _running.set((*running, action.id))
    try:
        for index, step_id in enumerate(payload.get("actions") or [], start=1):
            if not remaining:
                break
            step = session.get(ServerAction, step_id)
            label = f"Step {index}"
            if step is None:
                reason = f"{label}: server action {step_id} no longer exists"
            elif step.model != action.model:
                reason = f"{label} ({step.name}): works on {step.model}, not {action.model}"
            elif _handler(step.action_type) is None:
                reason = f"{label} ({step.name}): no handler for {step.action_type!r}"
            else:
                reason = ""
            if reason:
                outcomes.update({t.id: Outcome("error", reason) for t in remaining})
                break
            assert step is not None
            sub = _sub_batch(batch, remaining)
            try:
                with session.begin_nested():
                    result = dict(_handler(step.action_type)(sub, step))
            except Exception as exc:
                message = f"{label} ({step.name}): {type(exc).__name__}: {exc}"
                outcomes.update({t.id: Outcome("error", message) for t in remaining})
                break
            failed = {
                trace_id: outcome
                for trace_id, outcome in result.items()
                if isinstance(outcome, Outcome) and outcome.state != "processed"
            }
            for trace_id, outcome in failed.items():
                outcomes[trace_id] = Outcome(outcome.state, f"{label} ({step.name}): {outcome.message}")
            remaining = [t for t in remaining if t.id not in failed]
    finally:
        _running.reset(token)
    return outcomes


register_kind("multi", label="Run several actions", validate=validate_payload, run=run_multi)
