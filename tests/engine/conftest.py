from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nurture.engine import executors
from nurture.engine.executors import ExecutionBatch, Outcome


class FakeChannel:
    """Stands in for the email/SMS executors: records which traces it "sent"."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.fail: dict[int, Outcome] = {}

    def __call__(self, batch: ExecutionBatch) -> dict[int, Outcome]:
        self.sent.extend(t.id for t in batch.traces)
        return {t.id: self.fail[t.res_id] for t in batch.traces if t.res_id in self.fail}


@pytest.fixture
def channel() -> Iterator[FakeChannel]:
    fake = FakeChannel()
    saved: dict[str, Any] = {k: executors.get_executor(k) for k in ("email", "sms")}
    executors.register_executor("email", fake)
    executors.register_executor("sms", fake)
    try:
        yield fake
    finally:
        for key, value in saved.items():
            if value is None:
                executors._executors.pop(key, None)
            else:
                executors.register_executor(key, value)
