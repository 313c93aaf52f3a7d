"""A channel's per-process state: its context (what it needs from the settings) and its
transport (SMTP connection pool, SMS provider…), the same holder for every channel.

A server, the CLI or a test calls :meth:`ChannelProcess.configure` with its settings; a
process that never does gets a context from the environment's settings on first use. The
transport is made from the context on first use and dropped (closed) when the channel is
configured again, so it always matches the settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from nurture.config import Settings, load_settings

C = TypeVar("C")
T = TypeVar("T")


class ChannelProcess(Generic[C, T]):
    """The context and transport of one channel in this process (thread-safe)."""

    def __init__(
        self,
        make_context: Callable[[Settings], C],
        make_transport: Callable[[C], T],
        *,
        close: Callable[[T], None] | None = None,
    ) -> None:
        self.make_context = make_context
        self.make_transport = make_transport
        self.close = close
        self._context: C | None = None
        self._transport: T | None = None
        self._context_lock = threading.Lock()
        self._transport_lock = threading.Lock()

    def configure(self, settings: Settings) -> C:
        """Use ``settings`` for this channel in this process (servers, CLI, tests)."""
        with self._context_lock:
            self._context = context = self.make_context(settings)
        self.reset_transport()
        return context

    def context(self) -> C:
        """The configured context, or one from the environment's settings on first use."""
        with self._context_lock:
            if self._context is None:
                self._context = self.make_context(load_settings())
            return self._context

    def transport(self) -> T:
        """The process transport, made from the context on first use."""
        with self._transport_lock:
            if self._transport is None:
                self._transport = self.make_transport(self.context())
            return self._transport

    def reset_transport(self) -> None:
        """Forget (and close) the process transport; the next use makes a new one."""
        with self._transport_lock:
            old, self._transport = self._transport, None
        if old is not None and self.close is not None:
            self.close(old)

    def reset(self) -> None:
        """Forget the configured context and the transport (tests)."""
        with self._context_lock:
            self._context = None
        self.reset_transport()
