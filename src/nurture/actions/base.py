"""What every server action kind shares: the kind registry, payload validation, and running
an action record by record so that one failing record fails only its own trace.

A *kind* is a name (the ``ServerAction.action_type``), a ``validate_payload(model, payload)``
that runs at save time against the model registry only (no database: it checks shapes,
fields, paths and types, and returns the cleaned payload or raises
:class:`~nurture.errors.ValidationError` naming the payload field at fault), and a handler
``run(batch, action) -> {trace_id: Outcome}`` that the ``action`` activity type's executor
(:func:`nurture.actions.executor.run_server_action`) calls.

:func:`run_per_record` is how the built-in kinds run: each record in its own savepoint; an
error rolls back that record's writes and marks its trace ``error`` with the reason
(:class:`ActionSkipped` marks it ``canceled`` instead: nothing to do for that record), and
the rest of the batch carries on.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.campaigns.models import ServerAction
from nurture.engine.executors import DueTrace, ExecutionBatch, Outcome
from nurture.errors import NurtureError, ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.registry import FieldDef, ModelDef, RegistryError
from nurture.records.values import MAX_ID

log = logging.getLogger(__name__)

ActionHandler = Callable[[ExecutionBatch, ServerAction], Mapping[int, Outcome]]
PayloadValidator = Callable[[str, Mapping[str, Any]], dict[str, Any]]
#: action type names fit ``server_action.action_type`` (32 characters)
KIND_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")


class ActionFailed(NurtureError):
    """The action could not be done for one record: its trace becomes ``error``."""

    code = "action_failed"


class ActionSkipped(NurtureError):
    """Nothing to do for one record (no address, …): its trace becomes ``canceled``."""

    code = "action_skipped"


@dataclass(frozen=True)
class ActionKind:
    name: str
    label: str
    validate: PayloadValidator
    run: ActionHandler
    plugin: bool = False
    #: payload keys holding a secret: generated when absent at creation, kept on edits,
    #: never returned by read routes (see :func:`masked_payload`), rotatable
    secrets: tuple[str, ...] = ()


_kinds: dict[str, ActionKind] = {}


def register_kind(
    name: str,
    *,
    label: str,
    validate: PayloadValidator,
    run: ActionHandler,
    plugin: bool = False,
    secrets: tuple[str, ...] = (),
) -> ActionKind:
    """Make ``name`` a server action type: validated by ``validate``, run by ``run``."""
    if not KIND_NAME.match(name):
        raise ValueError(f"invalid action type name {name!r}")
    kind = ActionKind(
        name=name, label=label, validate=validate, run=run, plugin=plugin, secrets=secrets
    )
    _kinds[name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Forget a kind (tests; a plugin that is uninstalled)."""
    _kinds.pop(name, None)


def get_kind(name: str) -> ActionKind | None:
    return _kinds.get(name)


def action_types() -> tuple[str, ...]:
    """Every known action type, built-in kinds first."""
    return tuple(sorted(_kinds, key=lambda n: (_kinds[n].plugin, n)))


def kinds() -> list[ActionKind]:
    return [_kinds[name] for name in action_types()]


def validate_action(
    model: str,
    action_type: str,
    payload: Any,
    *,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Save-time check of a server action; returns the payload to store.

    A secret of the kind left out keeps its ``previous`` value (the stored payload of the
    action being edited) or, on creation, gets a new generated one.

    Raises :class:`ValidationError` naming ``model``, ``action_type``, ``payload`` or the
    payload field at fault.
    """
    try:
        REGISTRY.target(model)
    except RegistryError as exc:
        raise ValidationError(str(exc.args[0]), field="model") from None
    kind = _kinds.get(action_type)
    if kind is None:
        known = ", ".join(action_types())
        raise ValidationError(
            f"unknown action type {action_type!r} (known: {known})", field="action_type"
        )
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise ValidationError("the action payload must be an object", field="payload")
    try:
        cleaned = kind.validate(model, payload)
    except ValidationError:
        raise
    except Exception as exc:  # a plugin's validator that raised something else
        raise ValidationError(f"{action_type}: {exc}", field="payload") from exc
    if not isinstance(cleaned, dict):
        raise ValidationError(f"{action_type}: the validator returned no payload", field="payload")
    for key in kind.secrets:
        if not cleaned.get(key):
            kept = (previous or {}).get(key)
            cleaned[key] = kept if isinstance(kept, str) and kept else new_secret()
    try:
        json.dumps(cleaned)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"the payload cannot be stored as JSON: {exc}", field="payload") from None
    return cleaned


def new_secret() -> str:
    """A generated action secret (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def secret_keys(action_type: str) -> tuple[str, ...]:
    kind = _kinds.get(action_type)
    return kind.secrets if kind is not None else ()


def secret_hint(value: Any) -> str | None:
    """What read routes show of a secret: its last four characters."""
    return f"…{value[-4:]}" if isinstance(value, str) and value else None


def masked_payload(action_type: str, payload: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The payload without its secrets, and the hint of the first secret (or None)."""
    keys = secret_keys(action_type)
    shown = {k: v for k, v in payload.items() if k not in keys}
    hints = [secret_hint(payload.get(k)) for k in keys]
    return shown, next((h for h in hints if h), None)


# --------------------------------------------------------------------------- payload helpers


def check_keys(payload: Mapping[str, Any], allowed: set[str] | frozenset[str]) -> None:
    for key in payload:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ValidationError(f"unknown payload key {key!r} (known: {known})", field=str(key))


def text_value(
    payload: Mapping[str, Any],
    key: str,
    *,
    required: bool = False,
    max_length: int = 200,
    default: str | None = None,
) -> str | None:
    value = payload.get(key, default)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{key} is required", field=key)
        return default
    if not isinstance(value, str):
        raise ValidationError(f"{key} takes text", field=key)
    value = value.strip()
    if len(value) > max_length:
        raise ValidationError(f"{key} is longer than {max_length} characters", field=key)
    return value


def int_value(
    payload: Mapping[str, Any],
    key: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int | None = None,
) -> int | None:
    value = payload.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{key} takes a whole number", field=key)
    maximum = MAX_ID if maximum is None else maximum  # what a column (or an id) can hold
    if value < minimum or value > maximum:
        bound = f"between {minimum} and {maximum}"
        raise ValidationError(f"{key} must be {bound}", field=key)
    return value


def resolve_path(model: str | ModelDef, path: Any, *, field: str) -> list[tuple[ModelDef, FieldDef]]:
    """The steps of a dotted field path, or a ValidationError on ``field``."""
    if not isinstance(path, str) or not path.strip():
        raise ValidationError(f"{field} takes a field path like 'salesperson'", field=field)
    try:
        return REGISTRY.resolve_path(model, path.strip())
    except RegistryError as exc:
        raise ValidationError(str(exc.args[0]), field=field) from None


def to_one_path(
    model: str | ModelDef, path: Any, *, field: str
) -> list[tuple[ModelDef, FieldDef]]:
    """A path whose every step is a scalar or to-one relation (one value per record)."""
    steps = resolve_path(model, path, field=field)
    for step_model, fdef in steps:
        if fdef.is_to_many:
            raise ValidationError(
                f"{fdef.name!r} on {step_model.name} is a list of records; a single value is needed",
                field=field,
            )
    return steps


def read_path(record: Any, path: str) -> Any:
    """Follow ``path`` on an ORM object: related objects for relations, None when empty."""
    value: Any = record
    for part in path.split("."):
        if value is None:
            return None
        value = getattr(value, part)
    return value


# --------------------------------------------------------------------------- running


def payload_of(action: ServerAction) -> dict[str, Any]:
    data = json.loads(action.payload or "{}")
    if not isinstance(data, dict):
        raise ActionFailed("the action's payload is not an object")
    return data


def load_records(session: Session, model: ModelDef, ids: list[int]) -> dict[int, Any]:
    orm = model.orm
    found: dict[int, Any] = {}
    unique = sorted(set(ids))
    for start in range(0, len(unique), 500):
        part = unique[start : start + 500]
        for obj in session.scalars(select(orm).where(orm.id.in_(part))):
            found[int(obj.id)] = obj
    return found


RecordStep = Callable[[Any, DueTrace], None]


def run_per_record(batch: ExecutionBatch, action: ServerAction, step: RecordStep) -> dict[int, Outcome]:
    """Run ``step(record, trace)`` for each trace in its own savepoint; per-trace outcomes."""
    session = batch.session
    model = REGISTRY.get(action.model)
    records = load_records(session, model, batch.res_ids)
    outcomes: dict[int, Outcome] = {}
    for trace in batch.traces:
        record = records.get(trace.res_id)
        if record is None:
            outcomes[trace.id] = Outcome("error", f"{model.label} {trace.res_id} no longer exists")
            continue
        try:
            with session.begin_nested():
                step(record, trace)
        except ActionSkipped as exc:
            outcomes[trace.id] = Outcome("canceled", exc.message)
        except NurtureError as exc:
            outcomes[trace.id] = Outcome("error", exc.message)
        except Exception as exc:  # one record's failure must not stop the batch
            log.warning("server action %s failed on %s %s: %s", action.id, model.name, trace.res_id, exc)
            outcomes[trace.id] = Outcome("error", f"{type(exc).__name__}: {exc}")
    return outcomes
