"""In-process runner used by ``nurture serve`` in embedded mode: the engine loop in a thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from nurture.channels.queue import default_lease
from nurture.runtime import Runtime
from nurture.worker.loop import Worker, new_worker_id

log = logging.getLogger(__name__)


class InProcessRunner:
    """``prepare``, when given, runs in the engine thread before the loop starts (the first
    start's demo history, so the server answers meanwhile); it is passed a function telling
    whether a stop was asked."""

    def __init__(
        self,
        rt: Runtime,
        *,
        poll_interval: float = 0.2,
        prepare: Callable[[Callable[[], bool]], None] | None = None,
    ) -> None:
        self.rt = rt
        self.worker = Worker(
            rt.db,
            worker_id=new_worker_id("embedded"),
            poll_interval=poll_interval,
            lease=default_lease(rt.settings.extra),
        )
        self.prepare = prepare
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        prepare, self.prepare = self.prepare, None
        if prepare is not None:
            try:
                prepare(self.worker.stopping.is_set)
            except Exception:
                log.exception("preparing the engine failed; the engine starts anyway")
        if not self.worker.stopping.is_set():
            self.worker.run()

    def start(self) -> None:
        """Start the background loop (returns at once)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.worker.stopping.clear()
        self._thread = threading.Thread(target=self._run, name="nurture-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to finish its batch, release leases and return."""
        if self._thread is None:
            return
        self.worker.stop()
        self._thread.join(timeout)
        self._thread = None
