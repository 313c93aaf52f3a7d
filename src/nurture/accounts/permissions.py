"""Roles and what each may do (SPEC §10).

An action is ``<resource>.<verb>``. ``admin`` may do everything, including users and
settings; ``marketer`` reads and writes business records and campaigns but not users,
settings or the audit log; ``viewer`` only reads business records and campaigns. Every role
manages its own account (password, API tokens, sessions): ``account.manage``.

:func:`can` raises on an unknown action, so a typo in a route is found by the first test
that calls it rather than silently allowing or denying.
"""

from __future__ import annotations

from typing import Final

from nurture.errors import NurtureError

ADMIN: Final = "admin"
MARKETER: Final = "marketer"
VIEWER: Final = "viewer"
ROLES: Final[tuple[str, ...]] = (ADMIN, MARKETER, VIEWER)

# Business resources: what marketers work on.
BUSINESS_RESOURCES: Final[tuple[str, ...]] = (
    "records",  # contacts, leads, mailing contacts, events, CRM activities, …
    "lists",  # mailing lists and subscriptions
    "tags",
    "blacklist",  # email and phone blacklists
    "campaigns",  # campaigns, activities, participants, traces; start/stop/test
    "templates",  # email and SMS templates
    "server_actions",
)
READ_ONLY_RESOURCES: Final[tuple[str, ...]] = ("reports",)
ADMIN_RESOURCES: Final[tuple[str, ...]] = ("users", "settings")

ACTIONS: Final[frozenset[str]] = frozenset(
    [f"{r}.{v}" for r in BUSINESS_RESOURCES + ADMIN_RESOURCES for v in ("read", "write")]
    + [f"{r}.read" for r in READ_ONLY_RESOURCES]
    + ["audit.read", "account.manage"]
)

_READ_BUSINESS: Final = frozenset(
    [f"{r}.read" for r in BUSINESS_RESOURCES + READ_ONLY_RESOURCES] + ["account.manage"]
)
_WRITE_BUSINESS: Final = frozenset(f"{r}.write" for r in BUSINESS_RESOURCES)

POLICY: Final[dict[str, frozenset[str]]] = {
    ADMIN: ACTIONS,
    MARKETER: _READ_BUSINESS | _WRITE_BUSINESS,
    VIEWER: _READ_BUSINESS,
}


class Forbidden(NurtureError):
    """The actor's role does not allow the operation."""

    code = "forbidden"


class UnknownAction(ValueError):
    """A programming error: the action is not in :data:`ACTIONS`."""


def can(role: str | None, action: str) -> bool:
    """Whether a user with ``role`` may perform ``action``; an unknown role may do nothing."""
    if action not in ACTIONS:
        raise UnknownAction(f"unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}")
    if role is None:
        return False
    return action in POLICY.get(role, frozenset())


def actions_for(role: str) -> frozenset[str]:
    """Every action ``role`` may perform (empty for an unknown role)."""
    return POLICY.get(role, frozenset())


def is_role(value: str) -> bool:
    return value in ROLES
