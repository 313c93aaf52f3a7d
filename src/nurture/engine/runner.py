"""In-process runner used by ``nurture serve`` in embedded mode.

INTERFACE ONLY for now: the engine work fills in ``start``/``stop`` (a background thread
that loops continuous enrolment, due traces and event-window expiry with ``now=utcnow()``).
"""

from __future__ import annotations

from nurture.runtime import Runtime


class InProcessRunner:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def start(self) -> None:
        """Start the background loop (returns at once)."""

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to finish its batch, release leases and return."""
