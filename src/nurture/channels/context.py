"""A channel's per-process state, the same holders for every channel: its context (what it
needs from the settings: :class:`ChannelContext`) and its transport (SMTP connection pool,
SMS provider…: :class:`ProcessTransport`).

A server, the CLI or a test calls :meth:`ChannelContext.configure` with its settings; a
process that never does gets a context from the environment's settings on first use. The
transport is made (from the context) on first use and dropped (closed) when the channel is
configured again or reset, so it always matches the settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from nurture.config import Settings, load_settings

C = TypeVar("C")
T = TypeVar("T")


class ChannelContext(Generic[C]):
    """The context of one channel in this process (thread-safe)."""

    def __init__(self, make: Callable[[Settings], C]) -> None:
        self.make = make
        self._context: C | None = None
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    def on_change(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` whenever the context is configured or reset (drop a transport)."""
        self._hooks.append(hook)

    def configure(self, settings: Settings) -> C:
        """Use ``settings`` for this channel in this process (servers, CLI, tests)."""
        with self._lock:
            self._context = context = self.make(settings)
        self._changed()
        return context

    def context(self) -> C:
        """The configured context, or one from the environment's settings on first use."""
        with self._lock:
            if self._context is None:
                self._context = self.make(load_settings())
            return self._context

    def reset(self) -> None:
        """Forget the configured context (tests)."""
        with self._lock:
            self._context = None
        self._changed()

    def _changed(self) -> None:
        for hook in self._hooks:
            hook()


class ProcessTransport(Generic[T]):
    """The transport of one channel in this process, made on first use (thread-safe)."""

    def __init__(self, make: Callable[[], T], *, close: Callable[[T], None] | None = None) -> None:
        self.make = make
        self.close = close
        self._transport: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._transport is None:
                self._transport = self.make()
            return self._transport

    def reset(self) -> None:
        """Forget (and close) the transport; the next use makes a new one."""
        with self._lock:
            old, self._transport = self._transport, None
        if old is not None and self.close is not None:
            self.close(old)
