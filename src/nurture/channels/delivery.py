"""Delivery of every outbox (email, SMS, webhooks and plugin channels): the entry points
workers call.

The channels are those of :mod:`nurture.channels.registry` (entry-point group
``nurture.channels``); ``transport`` arguments replace the email transport.

* :func:`deliver_channel` — rounds of one channel until nothing is due (a task queue can
  run one per channel);
* :func:`deliver_all` — the same for every channel, one after the other (``nurture tick``,
  the worker when it has no sender thread);
* :class:`BackgroundDelivery` — the worker's sender thread: rounds of every channel while
  the engine thread composes the next batches.

All go through the crash-safe core of :mod:`nurture.channels.queue` (claim right before the
hand-over, record before the next claim, leases renewed by a heartbeat, interrupted sends
failed as unknown, never resent).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from nurture.channels import registry
from nurture.channels.queue import Channel, DeliveryResult, deliver_round, limit_of

log = logging.getLogger(__name__)

#: the channel the ``transport`` arguments below replace the transport of
TRANSPORT_CHANNEL = "email"


def channel_names() -> tuple[str, ...]:
    """Every registered delivery channel (:mod:`nurture.channels.registry`)."""
    return registry.names()


def channel_for(name: str, *, transport: Any | None = None) -> Channel[Any, Any]:
    """The delivery channel ``name`` with its process transport / provider (``transport``
    replaces it)."""
    return registry.channel(name, transport)


def _channel(name: str, transport: Any | None) -> Channel[Any, Any]:
    return registry.channel(name, transport if name == TRANSPORT_CHANNEL else None)


def deliver_channel(
    db: Any,
    *,
    channel: str,
    now: datetime,
    limit: int | None = None,
    worker_id: str = "deliver",
    lease: timedelta | None = None,
    max_rounds: int = 1000,
    should_stop: Callable[[], bool] | None = None,
    transport: Any | None = None,
) -> DeliveryResult:
    """Rounds of ``channel`` (up to ``limit`` rows each, default the channel's) until
    nothing is due at ``now``; ``transport`` replaces the process's email transport."""
    impl = _channel(channel, transport)
    total = DeliveryResult()
    for _ in range(max_rounds):
        result = deliver_round(
            db,
            impl,
            now=now,
            limit=limit or limit_of(impl),
            worker_id=worker_id,
            lease=lease,
            should_stop=should_stop,
        )
        total.add(result)
        if result.claimed == 0 or (should_stop is not None and should_stop()):
            break
    return total


def deliver_all(
    db: Any,
    *,
    now: datetime,
    worker_id: str = "deliver",
    lease: timedelta | None = None,
    channels: tuple[str, ...] | None = None,
    should_stop: Callable[[], bool] | None = None,
    transport: Any | None = None,
) -> DeliveryResult:
    """:func:`deliver_channel` for each channel (default: every registered one); a failing
    channel is logged and skipped (its rows stay queued, or are recovered after their lease)."""
    total = DeliveryResult()
    for name in channels if channels is not None else channel_names():
        try:
            total.add(
                deliver_channel(
                    db,
                    channel=name,
                    now=now,
                    worker_id=worker_id,
                    lease=lease,
                    should_stop=should_stop,
                    transport=transport,
                )
            )
        except Exception:
            log.exception("%s delivery failed; retrying at the next cycle", name)
    return total


class BackgroundDelivery:
    """Delivery rounds of every channel in a sender thread while the caller composes.

    Composing is CPU work; sending mostly waits for the SMTP server's (or provider's)
    replies. Here the sender thread sends the messages of committed batches while the
    caller's thread runs the next engine batch::

        with BackgroundDelivery(db, clock=lambda: now) as sender:
            while run_due(db, ...).claimed:
                sender.notify()  # a batch committed: there is something to send
        # leaving the block stops the thread, then delivers whatever is still due

    The thread only uses :func:`~nurture.channels.queue.deliver_round`, so the crash rules
    are the same. A failing round is logged and retried at the next wake-up.
    """

    def __init__(
        self,
        db: Any,
        *,
        clock: Callable[[], datetime],
        transport: Any | None = None,
        limit: int | None = None,
        worker_id: str = "deliver",
        lease: timedelta | None = None,
        channels: tuple[str, ...] | None = None,
        idle_seconds: float = 0.05,
    ) -> None:
        self.db = db
        self.clock = clock  # () -> datetime: "now" of each round
        self.transport = transport
        self.limit = limit
        self.worker_id = worker_id
        self.lease = lease
        self.channels = channels if channels is not None else channel_names()
        self.idle_seconds = idle_seconds
        self.result = DeliveryResult()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nurture-delivery", daemon=True)

    def __enter__(self) -> BackgroundDelivery:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """New messages were queued (a batch committed)."""
        self._wake.set()

    def _round(self, name: str, *, stoppable: bool) -> DeliveryResult:
        impl = _channel(name, self.transport)
        return deliver_round(
            self.db,
            impl,
            now=self.clock(),
            limit=self.limit or limit_of(impl),
            worker_id=self.worker_id,
            lease=self.lease,
            should_stop=self._stop.is_set if stoppable else None,
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            claimed = 0
            for name in self.channels:
                try:
                    result = self._round(name, stoppable=True)
                except Exception:
                    log.exception("%s delivery failed; retrying at the next wake-up", name)
                    result = DeliveryResult()
                self.result.add(result)
                claimed += result.claimed
            if claimed == 0:
                self._wake.wait(self.idle_seconds)
                self._wake.clear()

    def stop(self, *, flush: bool = True) -> DeliveryResult:
        """Stop the thread (after the hand-over in flight: the rest stays queued); with
        ``flush``, deliver what is still due in this thread. The total result."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if flush:
            for name in self.channels:
                while True:
                    result = self._round(name, stoppable=False)
                    self.result.add(result)
                    if result.claimed == 0:
                        break
        return self.result
