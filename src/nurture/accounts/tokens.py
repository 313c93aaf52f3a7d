"""API tokens: ``nrt_<id>_<secret>`` strings shown once, stored as a SHA-256 digest of the
secret, revocable, with the time of their last use.

Functions take the SQLAlchemy ``session`` they work in and, where time matters, ``now``
(naive UTC); creating and revoking a token writes an audit entry (``actor``: who did it,
``None`` for the command line).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from nurture.accounts.audit import Actor, audit
from nurture.accounts.models import ApiToken
from nurture.accounts.passwords import secret_digest
from nurture.accounts.permissions import can
from nurture.errors import NotFound, ValidationError
from nurture.records.models import User

TOKEN_SCHEME: Final = "nrt"
TOKEN_TOUCH_INTERVAL: Final = timedelta(minutes=1)


def parse_token(token: str) -> tuple[int, str] | None:
    """``(id, secret)`` of a well-formed ``nrt_<id>_<secret>`` token, else None."""
    if len(token) > 200:
        return None
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_SCHEME:
        return None
    token_id, secret = parts[1], parts[2]
    if not token_id.isascii() or not token_id.isdigit() or len(token_id) > 18:
        return None
    if len(secret) < 20:
        return None
    return int(token_id), secret


def create_token(
    session: Session,
    user: User,
    name: str = "API token",
    *,
    now: datetime,
    actor: Actor | None = None,
) -> tuple[str, ApiToken]:
    """Create an API token for ``user``; returns the token string (shown once) and the row."""
    name = name.strip()
    if not name:
        raise ValidationError("token name is required", field="name")
    if len(name) > 100:
        raise ValidationError("token name too long: at most 100 characters", field="name")
    if not user.active:
        raise ValidationError(f"user {user.login!r} is deactivated", field="user")
    secret = secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        prefix="",
        secret_hash=secret_digest(secret),
        created_at=now,
    )
    session.add(row)
    session.flush()
    token = f"{TOKEN_SCHEME}_{row.id}_{secret}"
    row.prefix = f"{TOKEN_SCHEME}_{row.id}_{secret[:4]}"
    audit(
        session,
        actor,
        "token.create",
        row,
        {"user": user.login, "name": name, "prefix": row.prefix},
        now=now,
    )
    return token, row


_DUMMY_SECRET_HASH: Final = secret_digest("nurture-no-such-token")


def lookup_token(session: Session, token: str) -> tuple[ApiToken, User] | None:
    """The live token row and its active user for ``token``, else None (read-only)."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    token_id, secret = parsed
    row = session.get(ApiToken, token_id)
    expected = row.secret_hash if row is not None else _DUMMY_SECRET_HASH
    matches = hmac.compare_digest(secret_digest(secret), expected)
    if row is None or not matches or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return row, user


def token_needs_touch(row: ApiToken, now: datetime) -> bool:
    return row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_INTERVAL


def touch_token(session: Session, token_id: int, now: datetime) -> None:
    """Record a use of the token, at most once per :data:`TOKEN_TOUCH_INTERVAL`."""
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at <= now - TOKEN_TOUCH_INTERVAL,
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


def verify_token(session: Session, token: str, *, now: datetime) -> User | None:
    """The active user ``token`` belongs to, or None (unknown, forged, revoked, inactive).

    Updates the token's ``last_used_at`` at most once a minute.
    """
    found = lookup_token(session, token)
    if found is None:
        return None
    row, user = found
    if token_needs_touch(row, now):
        touch_token(session, row.id, now)
        set_committed_value(row, "last_used_at", now)  # already written: no second UPDATE
    return user


def get_token(session: Session, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token with id {token_id}", field="id")
    return row


def revoke_token(
    session: Session, token_id: int, *, now: datetime, actor: Actor | None = None
) -> ApiToken:
    """Revoke a token (idempotent). A non-admin actor may revoke only their own tokens."""
    row = get_token(session, token_id)
    if actor is not None and actor.id != row.user_id and not can(actor.role, "users.write"):
        # Not "forbidden": do not reveal that another user's token exists.
        raise NotFound(f"no API token with id {token_id}", field="id")
    if row.revoked_at is None:
        row.revoked_at = now
        audit(session, actor, "token.revoke", row, {"prefix": row.prefix}, now=now)
    return row


def list_tokens(
    session: Session, *, user_id: int | None = None, include_revoked: bool = True
) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query))


