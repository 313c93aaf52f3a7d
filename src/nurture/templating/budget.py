"""The render budget: what one message may cost (loop iterations, output, seconds).

Every render runs under a :class:`RenderBudget` (:data:`SEND_BUDGET` when sending, the
stricter :data:`PREVIEW_BUDGET` for previews of unsaved templates). One :class:`Meter` is
spent by every part of one message (:func:`metered`); the sandbox charges a loop its length
before it starts (:class:`CountedLoop`) and checks the clock at every loop item, every
operator and every piece of output.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from nurture.templating.errors import RenderBudgetExceeded

MAX_OUTPUT_CHARS = 2_000_000


@dataclass(frozen=True)
class RenderBudget:
    """What one message may cost: loop iterations, output characters, seconds."""

    iterations: int = 100_000
    output_chars: int = MAX_OUTPUT_CHARS
    seconds: float = 2.0


#: budget of a message rendered for sending (email, SMS, transactional actions)
SEND_BUDGET = RenderBudget()
#: stricter budget of previews (anyone who may read templates may preview one)
PREVIEW_BUDGET = RenderBudget(seconds=0.5)


class Meter:
    """The budget spent by one render (one message: every part of it)."""

    __slots__ = ("budget", "deadline", "iterations")

    def __init__(self, budget: RenderBudget) -> None:
        self.budget = budget
        self.iterations = 0
        self.deadline = time.monotonic() + budget.seconds

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderBudgetExceeded(
                f"rendering took longer than {self.budget.seconds:g} s (the render budget)",
                timed_out=True,
            )

    def charge(self, count: int) -> None:
        self.iterations += count
        if self.iterations > self.budget.iterations:
            raise RenderBudgetExceeded(
                f"loops ran more than {self.budget.iterations} iterations (the render budget)"
            )
        self.tick()


_BUDGET: ContextVar[RenderBudget] = ContextVar("nurture_render_budget", default=SEND_BUDGET)
_METER: ContextVar[Meter | None] = ContextVar("nurture_render_meter", default=None)


@contextmanager
def render_budget(budget: RenderBudget) -> Iterator[None]:
    """Render under ``budget`` inside the block (e.g. :data:`PREVIEW_BUDGET`)."""
    token = _BUDGET.set(budget)
    try:
        yield
    finally:
        _BUDGET.reset(token)


@contextmanager
def metered() -> Iterator[Meter]:
    """One meter for every template rendered inside the block (one message)."""
    current = _METER.get()
    if current is not None:
        yield current
        return
    meter = Meter(_BUDGET.get())
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def context_meter(context: Any) -> Meter:
    """The active meter, else one per Jinja render context (templates rendered directly)."""
    meter = _METER.get()
    if meter is not None:
        return meter
    found = getattr(context, "_nurture_meter", None)
    if found is None:
        found = Meter(_BUDGET.get())
        context._nurture_meter = found
    return found


class CountedLoop:
    """A loop's sequence, charged to the meter before the loop starts, checking the clock
    at every item."""

    __slots__ = ("items", "meter")

    def __init__(self, meter: Meter, items: Sequence[Any]) -> None:
        self.meter = meter
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        tick = self.meter.tick
        for item in self.items:
            tick()
            yield item


def tick() -> None:
    """Check the clock of the message being rendered, if any."""
    meter = _METER.get()
    if meter is not None:
        meter.tick()


def active_meter() -> Meter:
    """The meter of the message being rendered, else a new one under the current budget."""
    return _METER.get() or Meter(_BUDGET.get())
