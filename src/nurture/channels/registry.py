"""The delivery channels: every outbox the delivery loops send, from entry points.

A channel is declared by an installed distribution in the entry-point group
``nurture.channels``; the name is the channel's, the value names either

* a *channel object* of the delivery core's interface
  (:class:`nurture.channels.queue.Channel`: ``name``, ``model``, ``claim``, ``send``,
  ``record``, ``recover``; optional ``scope`` and ``limit``), used as it is — a plugin
  channel on the shared outbox (:class:`nurture.channels.outbox.OutboxChannel`) is one; or
* a *factory* (a function or class) called for each delivery round with no argument, or
  with one argument that replaces the channel's process transport (an email
  :class:`~nurture.channels.email.transports.Transport`, an SMS provider): for channels
  whose transport is configured per process.

Nurture's own ``email``, ``sms`` and ``webhook`` are declared the same way in its
``pyproject.toml``. The group is read once per process (:func:`channels`); a broken entry
point is logged and skipped (:data:`LOAD_REPORT`), never fatal. :func:`register` adds one
in code (tests).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from nurture.channels.queue import Channel

log = logging.getLogger(__name__)

GROUP = "nurture.channels"

ChannelFactory = Callable[..., Channel[Any, Any]]

_channels: dict[str, Any] = {}
_loaded = False
_lock = threading.Lock()
#: entry point name → None (loaded) or why it was skipped
LOAD_REPORT: dict[str, str | None] = {}


def _is_channel(obj: Any) -> bool:
    return not isinstance(obj, type) and all(
        callable(getattr(obj, method, None)) for method in ("claim", "send", "record", "recover")
    )


def register(name: str, channel: Channel[Any, Any] | ChannelFactory) -> None:
    """Make ``channel`` (a channel object or a factory) the delivery channel ``name``."""
    if not _is_channel(channel) and not callable(channel):
        raise TypeError(f"channel {name!r}: {channel!r} is neither a channel nor a factory")
    with _lock:
        _load_locked(None)
        _channels[name] = channel


def unregister(name: str) -> None:
    with _lock:
        _channels.pop(name, None)


def load(points: Iterable[EntryPoint] | None = None) -> dict[str, str | None]:
    """Register the channels of ``points`` (default: the installed ``nurture.channels``
    entry points, once per process); ``{name: None or why it was skipped}``."""
    with _lock:
        return _load_locked(points)


def _load_locked(points: Iterable[EntryPoint] | None) -> dict[str, str | None]:
    global _loaded
    if points is None:
        if _loaded:
            return LOAD_REPORT
        _loaded = True
        points = entry_points(group=GROUP)
    for point in points:
        try:
            obj = point.load()
            if not _is_channel(obj) and not callable(obj):
                raise TypeError(f"{point.value} is neither a channel nor a factory")
            if _is_channel(obj) and getattr(obj, "name", None) != point.name:
                raise ValueError(f"{point.value} is the channel {getattr(obj, 'name', None)!r}")
            if point.name in _channels and _channels[point.name] is not obj:
                raise ValueError(f"channel {point.name!r} is already defined")
        except Exception as exc:
            log.warning("delivery channel %s (%s) not loaded: %s", point.name, point.value, exc)
            LOAD_REPORT[point.name] = str(exc) or type(exc).__name__
            continue
        _channels[point.name] = obj
        LOAD_REPORT[point.name] = None
    return LOAD_REPORT


def names() -> tuple[str, ...]:
    """The registered channels, sorted by name."""
    with _lock:
        _load_locked(None)
        return tuple(sorted(_channels))


def channel(name: str, transport: Any | None = None) -> Channel[Any, Any]:
    """The channel ``name`` for one delivery round; ``transport`` replaces its process
    transport (a factory's argument; a channel object takes none)."""
    with _lock:
        _load_locked(None)
        found = _channels.get(name)
    if found is None:
        raise ValueError(f"unknown delivery channel {name!r}; known: {', '.join(names())}")
    if _is_channel(found):
        if transport is not None:
            raise ValueError(f"delivery channel {name!r} takes no transport")
        return found  # type: ignore[no-any-return]
    made = found() if transport is None else found(transport)
    return made  # type: ignore[no-any-return]
