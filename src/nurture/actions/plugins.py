"""Custom server actions from installed Python packages (entry-point group ``nurture.actions``).

A plugin is an installed distribution that declares, in its ``pyproject.toml``::

    [project.entry-points."nurture.actions"]
    my_action = "my_package.module:action"

The entry point names an object (or a class, instantiated without arguments) with:

``name: str``
    the action type stored on server actions (lowercase, ``[a-z][a-z0-9_.-]``, ≤ 32
    characters); it must not be a built-in type.
``label: str`` (optional)
    what the UI shows.
``validate_payload(model: str, payload: Mapping[str, Any]) -> dict[str, Any]``
    runs when a server action of this type is saved, with the target model's name (see
    :data:`nurture.records.catalog.REGISTRY`) and the payload as given; returns the payload
    to store (JSON-serialisable) or raises :class:`nurture.errors.ValidationError` naming the
    field. No database is available here.
``run(batch: ExecutionBatch, action: ServerAction) -> Mapping[int, Outcome]``
    runs the action on ``batch.traces`` (their records are ``batch.res_ids`` of
    ``action.model``; ``batch.session`` is the engine's transaction, ``batch.now`` the
    execution time) and returns an :class:`~nurture.engine.executors.Outcome`
    (``"error"`` or ``"canceled"`` with a reason) for each trace that did not succeed;
    traces it does not mention are processed. :func:`nurture.actions.base.run_per_record`
    gives per-record savepoints for free.

A plugin's ``run`` is wrapped: it runs in its own savepoint, an exception fails the traces
it was given (with the plugin's name and the exception in the reason) and rolls back its
writes only, and outcomes for traces outside the batch are ignored. Nothing typed into the
UI or API is ever executed: only installed code runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

from nurture.actions.base import KIND_NAME, ActionHandler, get_kind, register_kind
from nurture.campaigns.models import ServerAction
from nurture.engine.executors import ExecutionBatch, Outcome

log = logging.getLogger(__name__)

GROUP = "nurture.actions"


@runtime_checkable
class ActionPlugin(Protocol):
    name: str

    def validate_payload(self, model: str, payload: Mapping[str, Any]) -> dict[str, Any]: ...

    def run(self, batch: ExecutionBatch, action: ServerAction) -> Mapping[int, Outcome]: ...


class PluginError(Exception):
    """An entry point that does not provide a usable action."""


def _guarded(name: str, run: Callable[[ExecutionBatch, ServerAction], Mapping[int, Outcome]]) -> ActionHandler:
    def handler(batch: ExecutionBatch, action: ServerAction) -> dict[int, Outcome]:
        ids = {t.id for t in batch.traces}
        try:
            with batch.session.begin_nested():
                result = run(batch, action)
        except Exception as exc:
            log.warning("action plugin %s failed: %s", name, exc)
            message = f"Action plugin {name!r} failed: {type(exc).__name__}: {exc}"
            return {trace_id: Outcome("error", message) for trace_id in ids}
        outcomes: dict[int, Outcome] = {}
        for trace_id, outcome in dict(result or {}).items():
            if trace_id not in ids:
                continue
            if not isinstance(outcome, Outcome) or outcome.state not in ("error", "canceled", "processed"):
                outcomes[trace_id] = Outcome("error", f"Action plugin {name!r} returned {outcome!r}")
            elif outcome.state != "processed":
                outcomes[trace_id] = outcome
        return outcomes

    return handler


def plugin_from_object(obj: Any) -> ActionPlugin:
    """Check an entry point's object (instantiating a class) against the interface."""
    if isinstance(obj, type):
        obj = obj()
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not KIND_NAME.match(name):
        raise PluginError(f"plugin name {name!r} is not a valid action type")
    for method in ("validate_payload", "run"):
        if not callable(getattr(obj, method, None)):
            raise PluginError(f"plugin {name!r} has no {method}()")
    return obj  # type: ignore[no-any-return]


def register_plugin(plugin: ActionPlugin, *, replace: bool = False) -> None:
    existing = get_kind(plugin.name)
    if existing is not None and (not existing.plugin or not replace):
        raise PluginError(f"action type {plugin.name!r} is already defined")
    label = getattr(plugin, "label", None)
    register_kind(
        plugin.name,
        label=label if isinstance(label, str) and label else plugin.name,
        validate=plugin.validate_payload,
        run=_guarded(plugin.name, plugin.run),
        plugin=True,
    )


def load_plugins(
    points: Iterable[EntryPoint] | None = None, *, replace: bool = False
) -> dict[str, str | None]:
    """Register the actions of every installed ``nurture.actions`` entry point.

    Returns ``{entry point name: None on success, else the reason it was skipped}``; a
    broken plugin is logged and skipped, never fatal.
    """
    report: dict[str, str | None] = {}
    for point in points if points is not None else entry_points(group=GROUP):
        try:
            plugin = plugin_from_object(point.load())
            register_plugin(plugin, replace=replace)
        except Exception as exc:
            log.warning("action plugin %s (%s) not loaded: %s", point.name, point.value, exc)
            report[point.name] = str(exc) or type(exc).__name__
        else:
            report[point.name] = None
    return report
