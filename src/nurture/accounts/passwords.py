"""Password hashing (Argon2id), the password policy, and the digest of random secrets.

Hashes use argon2-cffi's :class:`PasswordHasher` with its defaults (Argon2id, the RFC 9106
"low memory" parameters). A hash made with older parameters still verifies; the caller
stores :func:`upgrade` 's new hash after a successful login (see
:func:`nurture.accounts.logins.authenticate`).

API token and session secrets are random, so a plain SHA-256 digest (:func:`secret_digest`)
is enough to store them.
"""

from __future__ import annotations

import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from nurture.errors import ValidationError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # longer inputs are refused rather than hashed (cheap DoS otherwise)

_hasher = PasswordHasher()
# A hash of a random string, verified against when the login is unknown so that an unknown
# login costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("nurture-dummy-password-for-timing")


def check_policy(password: str, *, login: str | None = None) -> None:
    """Raise :class:`ValidationError` (field ``password``) when ``password`` is refused."""
    if len(password) < MIN_LENGTH:
        raise ValidationError(
            f"password too short: at least {MIN_LENGTH} characters are required",
            field="password",
            code="password_too_short",
        )
    if len(password) > MAX_LENGTH:
        raise ValidationError(
            f"password too long: at most {MAX_LENGTH} characters",
            field="password",
            code="password_too_long",
        )
    if not password.strip():
        raise ValidationError(
            "password must not be only spaces", field="password", code="password_blank"
        )
    if login is not None and password.strip().casefold() == login.strip().casefold():
        raise ValidationError(
            "password must not be the same as the login",
            field="password",
            code="password_is_login",
        )


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (policy is checked by the caller)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; False for a missing or unreadable hash."""
    if not stored_hash:
        burn_time(password)
        return False
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when ``stored_hash`` was made with other parameters than the current ones."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


def upgrade(stored_hash: str, password: str) -> str | None:
    """After a successful verify: a new hash when the stored one is outdated, else None."""
    return hash_password(password) if needs_rehash(stored_hash) else None


def burn_time(password: str) -> None:
    """Spend the time of one verification (login unknown or without a password)."""
    try:
        _hasher.verify(_DUMMY_HASH, password[:MAX_LENGTH])
    except VerificationError:
        pass


def secret_digest(value: str) -> str:
    """The SHA-256 hex digest of a random secret (API token, session id) as stored."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
