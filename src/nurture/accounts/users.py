"""Users: creating them, their role, password and whether they are active.

Every function takes the SQLAlchemy ``session`` it works in and, where time matters, ``now``
(naive UTC, see :mod:`nurture.clock`). Functions that change an account write an audit entry
in the same transaction; ``actor`` is who did it (``None`` for the command line).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.accounts import passwords
from nurture.accounts.audit import Actor, audit
from nurture.accounts.permissions import ADMIN, ROLES
from nurture.accounts.sessions import end_user_sessions
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records.models import User

_LOGIN_RE: Final = re.compile(r"^[^\s@]+(@[^\s@]+\.[^\s@]+)?$")


def normalize_login(login: str) -> str:
    return login.strip().lower()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(
            f"unknown role {role!r}: expected one of {', '.join(ROLES)}", field="role"
        )


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}", field="id")
    return user


def find_user(session: Session, login: str) -> User | None:
    return session.scalar(select(User).where(User.login == normalize_login(login)))


def get_user_by_login(session: Session, login: str) -> User:
    user = find_user(session, login)
    if user is None:
        raise NotFound(f"no user with login {login!r}", field="login")
    return user


def list_users(session: Session, *, include_inactive: bool = True) -> list[User]:
    query = select(User).order_by(User.id)
    if not include_inactive:
        query = query.where(User.active.is_(True))
    return list(session.scalars(query))


def create_user(
    session: Session,
    *,
    login: str,
    role: str,
    now: datetime,
    name: str | None = None,
    email: str | None = None,
    password: str | None = None,
    actor: Actor | None = None,
) -> User:
    """Create an active user. ``login`` is usually the email address (stored lower-case).

    Without ``password`` the user cannot sign in to the UI until one is set, but may use
    API tokens.
    """
    login_n = normalize_login(login)
    if not login_n:
        raise ValidationError("login is required", field="login")
    if len(login_n) > 254 or not _LOGIN_RE.match(login_n):
        raise ValidationError(
            f"invalid login {login!r}: use an email address or a name without spaces",
            field="login",
        )
    _check_role(role)
    if find_user(session, login_n) is not None:
        raise Conflict(f"a user with login {login_n!r} already exists", field="login")
    if email is None and "@" in login_n:
        email = login_n
    display = (name or "").strip() or login_n.split("@", 1)[0]
    if len(display) > 200:
        raise ValidationError("name too long: at most 200 characters", field="name")
    password_hash = None
    if password is not None:
        passwords.check_policy(password, login=login_n)
        password_hash = passwords.hash_password(password)
    user = User(
        login=login_n,
        name=display,
        email=email,
        role=role,
        password_hash=password_hash,
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    audit(
        session,
        actor,
        "user.create",
        user,
        {"login": login_n, "role": role},
        now=now,
    )
    return user


def set_password(
    session: Session,
    user: User,
    password: str,
    *,
    now: datetime,
    actor: Actor | None = None,
    keep_session_id: int | None = None,
) -> None:
    """Set ``user``'s password and sign out their other browsers."""
    passwords.check_policy(password, login=user.login)
    user.password_hash = passwords.hash_password(password)
    end_user_sessions(session, user.id, except_id=keep_session_id)
    audit(session, actor, "user.password_change", user, None, now=now)


def change_own_password(
    session: Session,
    user: User,
    current: str,
    password: str,
    *,
    now: datetime,
    keep_session_id: int | None = None,
) -> None:
    """A signed-in user changes their own password: the current one must be given."""
    if not passwords.verify_password(user.password_hash, current):
        raise ValidationError("the current password is wrong", field="current")
    set_password(session, user, password, now=now, actor=user, keep_session_id=keep_session_id)


def _other_active_admins(session: Session, user: User) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == ADMIN, User.active.is_(True), User.id != user.id)
        )
        or 0
    )


def change_role(
    session: Session, user: User, role: str, *, now: datetime, actor: Actor | None = None
) -> None:
    """Give ``user`` another role; the last active admin cannot be demoted."""
    _check_role(role)
    if role == user.role:
        return
    if user.role == ADMIN and user.active and _other_active_admins(session, user) == 0:
        raise Conflict("cannot change the role of the last active admin", field="role")
    previous = user.role
    user.role = role
    audit(session, actor, "user.role_change", user, {"from": previous, "to": role}, now=now)


def deactivate(session: Session, user: User, *, now: datetime, actor: Actor | None = None) -> None:
    """Deactivate ``user``: no more logins, sessions ended, API tokens refused."""
    if not user.active:
        return
    if user.role == ADMIN and _other_active_admins(session, user) == 0:
        raise Conflict("cannot deactivate the last active admin", field="active")
    user.active = False
    end_user_sessions(session, user.id)
    audit(session, actor, "user.deactivate", user, None, now=now)


def activate(session: Session, user: User, *, now: datetime, actor: Actor | None = None) -> None:
    if user.active:
        return
    user.active = True
    audit(session, actor, "user.activate", user, None, now=now)

