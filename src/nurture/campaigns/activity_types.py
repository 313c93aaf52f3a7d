"""The accepted activity types: the built-in channels and those of installed plugins."""

from __future__ import annotations

from importlib.metadata import entry_points

#: the built-in activity types, in the order the UI lists them
BUILTIN_ACTIVITY_TYPES = ("email", "sms", "action")
#: entry-point group of the executors (an activity type each); only the names are read here
EXECUTORS_GROUP = "nurture.executors"


def activity_types() -> tuple[str, ...]:
    """The built-in types, then the names of the ``nurture.executors`` entry points (never
    loaded here: the engine's registry loads them)."""
    names = list(BUILTIN_ACTIVITY_TYPES)
    for entry_point in entry_points(group=EXECUTORS_GROUP):
        if entry_point.name not in names:
            names.append(entry_point.name)
    return tuple(names)
