from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from nurture.accounts import passwords
from nurture.errors import ValidationError


def test_hash_is_argon2id_and_verifies() -> None:
    stored = passwords.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "correct horse batterY")
    assert not passwords.needs_rehash(stored)


def test_same_password_hashes_differently() -> None:
    assert passwords.hash_password("same password!") != passwords.hash_password("same password!")


@pytest.mark.parametrize("stored", [None, "", "not-a-hash", "$argon2id$v=19$garbage"])
def test_missing_or_unreadable_hash_never_verifies(stored: str | None) -> None:
    assert not passwords.verify_password(stored, "whatever password")


def test_outdated_parameters_are_upgraded() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("an old password")
    assert passwords.verify_password(old, "an old password")
    assert passwords.needs_rehash(old)
    new = passwords.upgrade(old, "an old password")
    assert new is not None and new != old
    assert not passwords.needs_rehash(new)
    assert passwords.verify_password(new, "an old password")
    assert passwords.upgrade(new, "an old password") is None


def test_policy_minimum_length() -> None:
    with pytest.raises(ValidationError) as info:
        passwords.check_policy("short123")
    assert info.value.field == "password"
    assert info.value.code == "password_too_short"
    assert "at least 10 characters" in info.value.message
    passwords.check_policy("0123456789")


def test_policy_refuses_the_login() -> None:
    with pytest.raises(ValidationError) as info:
        passwords.check_policy("Anna@Example.com", login="anna@example.com")
    assert info.value.code == "password_is_login"
    assert "login" in info.value.message
    passwords.check_policy("anna@example.com!", login="anna@example.com")


def test_policy_refuses_blank_and_huge() -> None:
    with pytest.raises(ValidationError):
        passwords.check_policy(" " * 12)
    with pytest.raises(ValidationError) as info:
        passwords.check_policy("x" * (passwords.MAX_LENGTH + 1))
    assert info.value.code == "password_too_long"


def test_overlong_candidate_is_refused_without_hashing() -> None:
    stored = passwords.hash_password("0123456789")
    assert not passwords.verify_password(stored, "0" * (passwords.MAX_LENGTH + 1))
