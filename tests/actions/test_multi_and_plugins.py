"""Sequences (multi), plugins from entry points, and save-time dispatch."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from sqlalchemy import select

from nurture import actions
from nurture.actions import plugins, validate_action
from nurture.actions.base import unregister_kind
from nurture.campaigns.models import ServerAction
from nurture.db import Database
from nurture.engine.executors import ExecutionBatch, Outcome
from nurture.errors import ValidationError
from nurture.records import models as m

from .helpers import T0, contact, run_action, save_action


def _tags(db: Database, contact_id: int) -> list[str]:
    with db.read() as s:
        c = s.get(m.Contact, contact_id)
        assert c is not None
        return sorted(t.name for t in c.tags)


# --------------------------------------------------------------------------- multi


def test_sequence_runs_steps_in_order_and_stops_failed_traces(db: Database) -> None:
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@x.io")
        b = contact(s, "Bob")  # no email: the blacklist step skips it
        tag = save_action(s, "contact", "update_record", {"add_tags": ["Seen"]}, name="Tag")
        black = save_action(s, "contact", "blacklist", {"what": "email"}, name="Block")
        tag2 = save_action(s, "contact", "update_record", {"add_tags": ["Blocked"]}, name="Tag2")
        seq = save_action(s, "contact", "multi", {"actions": [tag.id, black.id, tag2.id]}, name="Seq")
        run = run_action(s, seq, [a, b])
    assert run.of(a) is None
    skipped = run.of(b)
    assert skipped is not None and skipped.state == "canceled"
    assert skipped.message == "Step 2 (Block): Nothing to blacklist: no email address"
    assert _tags(db, a) == ["Blocked", "Seen"]
    assert _tags(db, b) == ["Seen"]
    with db.read() as s:
        assert list(s.scalars(select(m.EmailBlacklist.email))) == ["ann@x.io"]


def test_sequence_errors(db: Database) -> None:
    with db.transaction() as s:
        a = contact(s, "Ann")
        lead_action = save_action(s, "lead", "update_record", {"add_tags": ["x"]}, name="LeadTag")
        wrong = save_action(s, "contact", "multi", {"actions": [lead_action.id]})
        missing = save_action(s, "contact", "multi", {"actions": [99999]})
        loop = save_action(s, "contact", "multi", {"actions": [1]})
        loop.payload = json.dumps({"actions": [loop.id]})
        s.flush()
        runs = {name: run_action(s, act, [a]) for name, act in
                (("wrong", wrong), ("missing", missing), ("loop", loop))}
    messages = {name: run.of(a) for name, run in runs.items()}
    assert all(o is not None and o.state == "error" for o in messages.values())
    assert "works on lead" in messages["wrong"].message  # type: ignore[union-attr]
    assert "99999 no longer exists" in messages["missing"].message  # type: ignore[union-attr]
    assert "runs itself" in messages["loop"].message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "payload", [{}, {"actions": []}, {"actions": ["x"]}, {"actions": [0]}, {"actions": list(range(1, 30))},
                {"actions": [1], "more": 1}],
)
def test_multi_validation(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        validate_action("contact", "multi", payload)


# --------------------------------------------------------------------------- dispatch


def test_validate_action_dispatch() -> None:
    assert set(actions.BUILTIN_TYPES) <= set(actions.action_types())
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "run_python", {})
    assert info.value.field == "action_type"
    with pytest.raises(ValidationError) as info:
        validate_action("tag", "blacklist", {})
    assert info.value.field == "model"
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "blacklist", ["email"])
    assert info.value.field == "payload"
    assert validate_action("contact", "update_record", {"set": {"city": "Lyon"}}) == {"set": {"city": "Lyon"}}
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "update_record", {"set": {"id": 3}})
    assert info.value.field == "set.id"


# --------------------------------------------------------------------------- plugins


def test_example_plugin_is_installed_and_runs(db: Database) -> None:
    assert actions.PLUGIN_REPORT.get("example_tag_domain") is None
    assert "example_tag_domain" in actions.PLUGIN_REPORT
    kind = actions.get_kind("example_tag_domain")
    assert kind is not None and kind.plugin
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "example_tag_domain", {"prefix": 3})
    assert info.value.field == "prefix"
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@example.com")
        b = contact(s, "Bob")
        action = save_action(s, "contact", "example_tag_domain", {"prefix": "d:"})
        run = run_action(s, action, [a, b])
    assert run.of(a) is None
    failed = run.of(b)
    assert failed is not None and (failed.state, failed.message) == ("error", "no email address")
    assert _tags(db, a) == ["d:example.com"]


class _Exploding:
    name = "test_exploding"

    def validate_payload(self, model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        return dict(payload)

    def run(self, batch: ExecutionBatch, action: ServerAction) -> Mapping[int, Outcome]:
        batch.session.add(m.Tag(name="written-then-rolled-back", color=0))
        batch.session.flush()
        raise RuntimeError("boom")


class _Sloppy:
    name = "test_sloppy"

    def validate_payload(self, model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        raise KeyError("oops")

    def run(self, batch: ExecutionBatch, action: ServerAction) -> Mapping[int, Outcome]:
        first = batch.traces[0].id
        return {first: "bad", 123456789: Outcome("error", "not mine")}  # type: ignore[dict-item]


@pytest.fixture
def test_plugins() -> Iterator[None]:
    yield
    for name in ("test_exploding", "test_sloppy"):
        unregister_kind(name)


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=plugins.GROUP)


def test_load_plugins_reports_broken_ones(test_plugins: None) -> None:
    here = __name__
    report = plugins.load_plugins([
        _ep("ok", f"{here}:_Exploding"),
        _ep("missing", "no_such_module_xyz:thing"),
        _ep("clash", "nurture_example_action:action"),  # already registered
        _ep("builtin", f"{here}:BUILTIN_CLASH"),
        _ep("shapeless", f"{here}:NOT_A_PLUGIN"),
    ])
    assert report["ok"] is None
    assert report["missing"] and "no_such_module_xyz" in report["missing"]
    assert report["clash"] and "already defined" in report["clash"]
    assert report["builtin"] and "already defined" in report["builtin"]
    assert report["shapeless"] and "not a valid action type" in report["shapeless"]
    assert actions.get_kind("test_exploding") is not None


class BUILTIN_CLASH(_Exploding):  # noqa: N801
    name = "webhook"


NOT_A_PLUGIN = object()


def test_plugin_exceptions_fail_its_traces_and_roll_back(db: Database, test_plugins: None) -> None:
    plugins.register_plugin(plugins.plugin_from_object(_Exploding))
    plugins.register_plugin(plugins.plugin_from_object(_Sloppy()))
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "test_sloppy", {})
    assert info.value.field == "payload"
    with db.transaction() as s:
        a, b = contact(s, "Ann"), contact(s, "Bob")
        s.add(ServerAction(name="x", model="contact", action_type="test_exploding", payload="{}", created_at=T0))
        s.add(ServerAction(name="y", model="contact", action_type="test_sloppy", payload="{}", created_at=T0))
        s.flush()
        exploding, sloppy = s.scalars(select(ServerAction).order_by(ServerAction.id)).all()
        run = run_action(s, exploding, [a, b])
        run2 = run_action(s, sloppy, [a, b])
    assert {o.message for o in run.outcomes.values()} == {
        "Action plugin 'test_exploding' failed: RuntimeError: boom"
    }
    assert len(run.outcomes) == 2
    with db.read() as s:
        assert s.scalar(select(m.Tag).where(m.Tag.name == "written-then-rolled-back")) is None
    assert list(run2.outcomes) == [run2.trace_of[a]]
    assert "returned 'bad'" in run2.outcomes[run2.trace_of[a]].message
