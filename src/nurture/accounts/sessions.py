"""Browser sessions: created at sign-in, looked up and touched on each request, ended at
sign-out or when the user's password changes or the account is deactivated.

The cookie carries a random session id; only its SHA-256 digest is stored. Functions take
the SQLAlchemy ``session`` they work in and ``now`` (naive UTC, see :mod:`nurture.clock`).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from nurture.accounts.models import WebSession
from nurture.accounts.passwords import secret_digest
from nurture.records.models import User

SESSION_IDLE_TIMEOUT: Final = timedelta(hours=12)
SESSION_MAX_AGE: Final = timedelta(days=7)
SESSION_TOUCH_INTERVAL: Final = timedelta(minutes=1)


def create_session(
    session: Session,
    user: User,
    *,
    now: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
) -> tuple[str, WebSession]:
    """Start a browser session for ``user``; returns the session id (for the cookie) and row."""
    sid = secrets.token_urlsafe(32)
    row = WebSession(
        user_id=user.id,
        sid_hash=secret_digest(sid),
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_MAX_AGE,
        ip=ip[:45] if ip else None,
        user_agent=user_agent[:255] if user_agent else None,
    )
    session.add(row)
    session.flush()
    return sid, row


def lookup_session(session: Session, sid: str, now: datetime) -> tuple[WebSession, User] | None:
    """The live session for ``sid`` and its active user, else None (read-only)."""
    if not sid or len(sid) > 128:
        return None
    row = session.scalar(select(WebSession).where(WebSession.sid_hash == secret_digest(sid)))
    if row is None or row.expires_at <= now or row.last_seen_at + SESSION_IDLE_TIMEOUT <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return row, user


def session_needs_touch(row: WebSession, now: datetime) -> bool:
    return now - row.last_seen_at >= SESSION_TOUCH_INTERVAL


def touch_session(session: Session, session_id: int, now: datetime) -> None:
    session.execute(
        update(WebSession)
        .where(WebSession.id == session_id, WebSession.last_seen_at <= now - SESSION_TOUCH_INTERVAL)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def end_session(session: Session, sid: str) -> None:
    session.execute(delete(WebSession).where(WebSession.sid_hash == secret_digest(sid)))


def end_user_sessions(session: Session, user_id: int, *, except_id: int | None = None) -> None:
    query = delete(WebSession).where(WebSession.user_id == user_id)
    if except_id is not None:
        query = query.where(WebSession.id != except_id)
    session.execute(query)


def prune_sessions(session: Session, now: datetime) -> None:
    """Delete expired and idle sessions (see :func:`nurture.accounts.logins.prune`)."""
    session.execute(
        delete(WebSession).where(
            or_(WebSession.expires_at <= now, WebSession.last_seen_at <= now - SESSION_IDLE_TIMEOUT)
        )
    )
