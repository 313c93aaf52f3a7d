from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.twilio_server import CallbackReceiver, FakeTwilio, running_receiver, running_twilio


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running_twilio()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    yield from running_receiver()
