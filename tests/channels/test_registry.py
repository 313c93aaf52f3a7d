"""The delivery channels come from entry points (group ``nurture.channels``)."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

from nurture.channels import delivery, registry
from nurture.channels.outbox.channel import Message, OutboxChannel, SendResult
from nurture.channels.queue import DEFAULT_LIMIT, limit_of
from nurture.channels.webhook.delivery import WebhookChannel


def _send(message: Message) -> SendResult:
    return SendResult("sent")


fake = OutboxChannel("fake_push", _send, limit=7)
misnamed = OutboxChannel("other_name", _send)
not_a_channel = 42


def point(name: str, attr: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{__name__}:{attr}", group=registry.GROUP)


@pytest.fixture(autouse=True)
def forget() -> Iterator[None]:
    report = dict(registry.load())
    yield
    for name in ("fake_push", "alias", "broken", "missing"):
        registry.unregister(name)
    registry.LOAD_REPORT.clear()
    registry.LOAD_REPORT.update(report)


def test_nurtures_own_channels_are_entry_points() -> None:
    assert {"email", "sms", "webhook"} <= set(registry.names())
    assert all(registry.LOAD_REPORT[name] is None for name in ("email", "sms", "webhook"))
    assert delivery.channel_names() == registry.names()
    # a factory makes one channel per round; its limit is the channel's own
    webhook = registry.channel("webhook")
    assert isinstance(webhook, WebhookChannel) and webhook is not registry.channel("webhook")
    assert limit_of(registry.channel("email")) == 500
    with pytest.raises(ValueError, match="unknown delivery channel 'nope'"):
        registry.channel("nope")


def test_a_plugin_channel_object_is_used_as_it_is() -> None:
    report = registry.load([point("fake_push", "fake")])
    assert report["fake_push"] is None
    assert "fake_push" in registry.names()
    assert registry.channel("fake_push") is fake
    assert limit_of(fake) == 7 and limit_of(object()) == DEFAULT_LIMIT
    with pytest.raises(ValueError, match="takes no transport"):
        registry.channel("fake_push", transport=object())


def test_broken_entry_points_are_skipped_and_reported() -> None:
    report = registry.load(
        [
            point("broken", "not_a_channel"),
            point("missing", "no_such_name"),
            point("alias", "misnamed"),
            point("webhook", "_send"),
        ]
    )
    assert "neither a channel nor a factory" in str(report["broken"])
    assert report["missing"]
    assert "is the channel 'other_name'" in str(report["alias"])
    assert "already defined" in str(report["webhook"])
    names = registry.names()
    assert not {"broken", "missing", "alias"} & set(names)
    assert isinstance(registry.channel("webhook"), WebhookChannel)
