from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.twilio_server import CallbackReceiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    """A loopback HTTP server recording the webhooks it receives."""
    yield from running_receiver()
