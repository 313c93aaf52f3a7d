"""The accepted activity types: the built-in ones, then the names of the ``nurture.executors``
entry points (read, never loaded), so a channel plugin adds its type without editing campaigns."""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from nurture.campaigns import activities, campaigns
from nurture.campaigns import activity_types as module
from nurture.campaigns.activity_types import BUILTIN_ACTIVITY_TYPES, activity_types
from nurture.db import Database
from nurture.errors import ValidationError

NOW = datetime(2026, 1, 5, 9)


def _entry_points(*names: str) -> Any:
    def fake(*, group: str) -> list[EntryPoint]:
        assert group == "nurture.executors"
        # the target does not exist: loading it would fail, reading its name must not
        return [EntryPoint(name, "nurture_missing_plugin:executor", group) for name in names]

    return fake


def test_builtin_types_come_first_in_their_order() -> None:
    assert BUILTIN_ACTIVITY_TYPES == ("email", "sms", "action")
    assert activity_types()[:3] == BUILTIN_ACTIVITY_TYPES


def test_plugin_types_follow_the_builtins_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "entry_points", _entry_points("sms", "webpush", "email", "whatsapp"))
    assert activity_types() == ("email", "sms", "action", "webpush", "whatsapp")


def test_no_plugins_leaves_the_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "entry_points", _entry_points())
    assert activity_types() == BUILTIN_ACTIVITY_TYPES


def test_add_activity_accepts_a_plugin_type(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "entry_points", _entry_points("webpush"))
    with db.transaction() as s:
        campaign = campaigns.create_campaign(session=s, now=NOW, name="Push", model="contact")
        push = activities.add_activity(
            session=s, now=NOW, campaign_id=campaign.id, name="Ping", activity_type="webpush"
        )
        assert push.activity_type == "webpush"
        with pytest.raises(ValidationError) as refused:
            activities.add_activity(
                session=s, now=NOW, campaign_id=campaign.id, name="X", activity_type="fax"
            )
    assert refused.value.field == "activity_type"
    assert "known: email, sms, action, webpush" in refused.value.message
