from __future__ import annotations

import pytest

from nurture.accounts.permissions import ACTIONS, ROLES, UnknownAction, actions_for, can

BUSINESS = ["records", "lists", "tags", "blacklist", "campaigns", "templates", "server_actions"]

# The full matrix, written out: role → actions allowed. Everything else is refused.
EXPECTED: dict[str, set[str]] = {
    "admin": set(ACTIONS),
    "marketer": {f"{r}.{v}" for r in BUSINESS for v in ("read", "write")}
    | {"reports.read", "account.manage"},
    "viewer": {f"{r}.read" for r in BUSINESS} | {"reports.read", "account.manage"},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_matrix(role: str, action: str) -> None:
    assert can(role, action) is (action in EXPECTED[role])


def test_admin_only_actions() -> None:
    for action in ("users.read", "users.write", "settings.read", "settings.write", "audit.read"):
        assert can("admin", action)
        assert not can("marketer", action)
        assert not can("viewer", action)


def test_viewer_never_writes() -> None:
    assert not any(a.endswith(".write") for a in actions_for("viewer"))


def test_unknown_role_and_anonymous_may_do_nothing() -> None:
    for action in ACTIONS:
        assert not can("superuser", action)
        assert not can(None, action)
    assert actions_for("superuser") == frozenset()


def test_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(UnknownAction, match="campaign.read"):
        can("admin", "campaign.read")
