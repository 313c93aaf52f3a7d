"""Service functions for accounts: users, passwords, login throttling, API tokens, web
sessions and the audit log.

Every function takes the SQLAlchemy ``session`` it works in and, where time matters, ``now``
(naive UTC, see :mod:`nurture.clock`). Functions that change an account write an audit entry
in the same transaction; ``actor`` is who did it (``None`` for the command line).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from nurture.accounts import passwords
from nurture.accounts.models import ApiToken, AuditLog, LoginAttempt, WebSession
from nurture.accounts.permissions import ADMIN, ROLES, can
from nurture.errors import Conflict, NotFound, NurtureError, ValidationError
from nurture.records.models import User

# Login throttling (see :func:`login_locked_until`): failures counted over a sliding window
# per (login, client address) and per address; a login's failures from every address add a
# progressive delay, capped, that addresses the login signed in from recently skip.
LOGIN_WINDOW: Final = timedelta(minutes=15)
MAX_FAILURES_PER_LOGIN: Final = 5  # per (login, address)
MAX_FAILURES_PER_IP: Final = 20
BACKOFF_AFTER_FAILURES: Final = 10  # per login, from all addresses together
MAX_BACKOFF: Final = timedelta(seconds=60)
# Login attempts older than this are pruned by :func:`prune`.
LOGIN_ATTEMPT_RETENTION: Final = timedelta(days=7)

TOKEN_SCHEME: Final = "nrt"
TOKEN_TOUCH_INTERVAL: Final = timedelta(minutes=1)

SESSION_IDLE_TIMEOUT: Final = timedelta(hours=12)
SESSION_MAX_AGE: Final = timedelta(days=7)
SESSION_TOUCH_INTERVAL: Final = timedelta(minutes=1)

# Actions written by Nurture itself; other modules may add theirs (``<object>.<verb>``).
AUDIT_ACTIONS: Final[tuple[str, ...]] = (
    "campaign.create",
    "campaign.start",
    "campaign.stop",
    "campaign.update",
    "campaign.duplicate",
    "campaign.delete",
    "blacklist.add",
    "blacklist.remove",
    "user.create",
    "user.role_change",
    "user.password_change",
    "user.deactivate",
    "user.activate",
    "token.create",
    "token.revoke",
    "settings.update",
)
_ACTION_RE: Final = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_LOGIN_RE: Final = re.compile(r"^[^\s@]+(@[^\s@]+\.[^\s@]+)?$")


class Actor(Protocol):
    """Who performs an operation: a :class:`User` or the web layer's current user."""

    @property
    def id(self) -> int: ...

    @property
    def login(self) -> str: ...

    @property
    def role(self) -> str: ...


class Forbidden(NurtureError):
    """The actor's role does not allow the operation."""

    code = "forbidden"


class LoginRefused(NurtureError):
    """Why a password login was refused.

    :func:`authenticate` *returns* it rather than raising, so that the failed attempt it
    recorded is committed with the caller's transaction. ``reason`` is
    ``invalid_credentials`` (unknown login or wrong password: never told apart),
    ``inactive`` (right password, deactivated account) or ``locked`` (too many failures;
    ``retry_at`` says when a new attempt will be considered).
    """

    code = "login_refused"

    def __init__(self, reason: str, *, retry_at: datetime | None = None, now: datetime) -> None:
        self.reason = reason
        self.retry_at = retry_at
        if reason == "locked" and retry_at is not None:
            seconds = -(-int((retry_at - now).total_seconds()) // 1)
            if seconds < 60:
                message = (
                    "too many failed login attempts; try again after "
                    f"{retry_at:%Y-%m-%d %H:%M:%S} UTC (in {max(1, seconds)} seconds)"
                )
            else:
                minutes = max(1, -(-seconds // 60))
                message = (
                    "too many failed login attempts; try again after "
                    f"{retry_at:%Y-%m-%d %H:%M} UTC "
                    f"(in {minutes} minute{'s' if minutes != 1 else ''})"
                )
        elif reason == "inactive":
            message = "this account is deactivated; ask an administrator"
        else:
            message = "wrong login or password"
        super().__init__(message, code=f"login_{reason}")

    def retry_after_seconds(self, now: datetime) -> int | None:
        """Seconds to wait (for a ``Retry-After`` header), rounded up; None if not locked."""
        if self.retry_at is None:
            return None
        return max(1, -(-int((self.retry_at - now).total_seconds() * 1000) // 1000))


# --- users ---------------------------------------------------------------------------------


def normalize_login(login: str) -> str:
    return login.strip().lower()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(
            f"unknown role {role!r}: expected one of {', '.join(ROLES)}", field="role"
        )


def _actor_label(actor: Actor | None) -> str:
    return actor.login if actor is not None else "cli"


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


# --- password login with throttling ----------------------------------------------------------


def _lockout_until(
    session: Session, where: Any, limit: int, since: datetime
) -> datetime | None:
    """When the failures matching ``where`` since ``since`` drop below ``limit``.

    With failures f1 (newest) … fn in the window, the count stays at ``limit`` or more until
    the ``limit``-th newest leaves the window: retry at ``f_limit + LOGIN_WINDOW``.
    """
    times = list(
        session.scalars(
            select(LoginAttempt.at)
            .where(where, LoginAttempt.outcome == "failure", LoginAttempt.at > since)
            .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
            .limit(limit)
        )
    )
    if len(times) < limit:
        return None
    return times[-1] + LOGIN_WINDOW


def _same_address(ip: str | None) -> Any:
    return LoginAttempt.ip == ip if ip else LoginAttempt.ip.is_(None)


def _backoff_until(
    session: Session, login: str, ip: str | None, since: datetime, now: datetime
) -> datetime | None:
    """The progressive per-login delay: after ``BACKOFF_AFTER_FAILURES`` failures from any
    address, each attempt waits 1, 2, 4 … seconds (at most ``MAX_BACKOFF``) after the newest
    failure. Addresses the login signed in from within the retention period skip it."""
    if ip:
        known = session.scalar(
            select(LoginAttempt.id).where(
                LoginAttempt.login == login,
                LoginAttempt.ip == ip,
                LoginAttempt.outcome == "success",
                LoginAttempt.at > now - LOGIN_ATTEMPT_RETENTION,
            ).limit(1)
        )
        if known is not None:
            return None
    failures = session.execute(
        select(func.count(), func.max(LoginAttempt.at)).where(
            LoginAttempt.login == login, LoginAttempt.outcome == "failure", LoginAttempt.at > since
        )
    ).one()
    count, newest = int(failures[0]), failures[1]
    if count < BACKOFF_AFTER_FAILURES or newest is None:
        return None
    delay = min(timedelta(seconds=2 ** min(count - BACKOFF_AFTER_FAILURES, 16)), MAX_BACKOFF)
    until: datetime = newest + delay
    return until


def login_locked_until(
    session: Session, login: str, ip: str | None, now: datetime
) -> datetime | None:
    """The time until which logins for ``login`` from ``ip`` are refused, or None.

    Three rules, none of which lets someone who only knows a login lock its owner out:

    * (login, address): ``MAX_FAILURES_PER_LOGIN`` failures in ``LOGIN_WINDOW`` refuse that
      login *from that address* until the oldest leaves the window (a success of the login
      starts the count again);
    * address: ``MAX_FAILURES_PER_IP`` failures in the window, whatever the logins, refuse
      the address;
    * login, from every address: past ``BACKOFF_AFTER_FAILURES`` failures in the window,
      each attempt waits a delay doubling from 1 second up to ``MAX_BACKOFF`` after the
      newest failure; refused attempts do not count, and an address the login signed in
      from in the last ``LOGIN_ATTEMPT_RETENTION`` is exempt. A distributed guesser is
      slowed to about one guess a minute; the owner waits at most a minute.
    """
    login_n = normalize_login(login)
    window_start = now - LOGIN_WINDOW
    last_success = session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.login == login_n, LoginAttempt.outcome == "success"
        )
    )
    since = max(window_start, last_success) if last_success is not None else window_start
    candidates = [
        _lockout_until(
            session,
            and_(LoginAttempt.login == login_n, _same_address(ip)),
            MAX_FAILURES_PER_LOGIN,
            since,
        ),
        _backoff_until(session, login_n, ip, since, now),
    ]
    if ip:
        # Successes do not reset the per-address count: one valid account must not let an
        # address go on guessing the passwords of others.
        candidates.append(
            _lockout_until(session, LoginAttempt.ip == ip, MAX_FAILURES_PER_IP, window_start)
        )
    found = [t for t in candidates if t is not None and t > now]
    return max(found) if found else None


def authenticate(
    session: Session, login: str, password: str, *, ip: str | None, now: datetime
) -> User | LoginRefused:
    """Check a password login; returns the user, or a :class:`LoginRefused` (not raised).

    Refuses without checking the password while the login or the address is locked out;
    such attempts are recorded but do not extend the lockout. A successful login resets
    the per-login count and upgrades an outdated password hash.
    """
    login_n = normalize_login(login)[:254]
    ip = ip[:45] if ip else None
    locked_until = login_locked_until(session, login_n, ip, now)
    if locked_until is not None:
        session.add(LoginAttempt(at=now, login=login_n, ip=ip, outcome="locked"))
        session.flush()
        return LoginRefused("locked", retry_at=locked_until, now=now)
    user = find_user(session, login_n) if login_n else None
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        session.add(LoginAttempt(at=now, login=login_n, ip=ip, outcome="failure"))
        session.flush()
        reason = "inactive" if ok and user is not None else "invalid_credentials"
        return LoginRefused(reason, now=now)
    session.add(LoginAttempt(at=now, login=login_n, ip=ip, outcome="success"))
    assert user.password_hash is not None
    new_hash = passwords.upgrade(user.password_hash, password)
    if new_hash is not None:
        user.password_hash = new_hash
    session.flush()
    return user


# --- API tokens ------------------------------------------------------------------------------


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


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
        secret_hash=_sha256(secret),
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


_DUMMY_SECRET_HASH: Final = _sha256("nurture-no-such-token")


def lookup_token(session: Session, token: str) -> tuple[ApiToken, User] | None:
    """The live token row and its active user for ``token``, else None (read-only)."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    token_id, secret = parsed
    row = session.get(ApiToken, token_id)
    expected = row.secret_hash if row is not None else _DUMMY_SECRET_HASH
    matches = hmac.compare_digest(_sha256(secret), expected)
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


# --- web sessions ----------------------------------------------------------------------------


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
        sid_hash=_sha256(sid),
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
    row = session.scalar(select(WebSession).where(WebSession.sid_hash == _sha256(sid)))
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
    session.execute(delete(WebSession).where(WebSession.sid_hash == _sha256(sid)))


def end_user_sessions(session: Session, user_id: int, *, except_id: int | None = None) -> None:
    query = delete(WebSession).where(WebSession.user_id == user_id)
    if except_id is not None:
        query = query.where(WebSession.id != except_id)
    session.execute(query)


def prune(session: Session, now: datetime) -> None:
    """Housekeeping: delete expired sessions and old login attempts."""
    session.execute(
        delete(WebSession).where(
            or_(WebSession.expires_at <= now, WebSession.last_seen_at <= now - SESSION_IDLE_TIMEOUT)
        )
    )
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - LOGIN_ATTEMPT_RETENTION))


# --- audit log -------------------------------------------------------------------------------

AuditObject = Any  # a mapped row with ``__tablename__`` and ``id``, or ``(type, id)``


def _object_ref(obj: AuditObject) -> tuple[str | None, str | None]:
    if obj is None:
        return None, None
    if isinstance(obj, tuple):
        kind, ident = obj
        return str(kind), None if ident is None else str(ident)
    kind = getattr(obj, "__tablename__", type(obj).__name__)
    ident = getattr(obj, "id", None)
    return str(kind), None if ident is None else str(ident)


def audit(
    session: Session,
    user: Actor | None,
    action: str,
    obj: AuditObject = None,
    details: dict[str, Any] | None = None,
    *,
    now: datetime,
    ip: str | None = None,
    actor: str | None = None,
) -> AuditLog:
    """Record that ``user`` (None: the command line, or ``actor``) did ``action`` to ``obj``.

    ``obj`` is a mapped row (its table name and id are kept) or a ``(type, id)`` pair;
    ``details`` must be JSON-serialisable (dates are written as ISO strings).
    """
    if not _ACTION_RE.match(action):
        raise ValueError(f"audit action must look like 'object.verb', got {action!r}")
    object_type, object_id = _object_ref(obj)
    clean = json.loads(json.dumps(details, default=_json_default)) if details else None
    entry = AuditLog(
        at=now,
        user_id=user.id if user is not None else None,
        actor=actor or _actor_label(user),
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=clean,
        ip=ip[:45] if ip else None,
    )
    session.add(entry)
    session.flush()
    return entry


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditLog]
    total: int


def list_audit(
    session: Session,
    *,
    user_id: int | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> AuditPage:
    """Audit entries, newest first, with the total count for pagination.

    ``action`` ending in ``.*`` (e.g. ``campaign.*``) matches every verb of that object.
    """
    conditions: list[Any] = []
    if user_id is not None:
        conditions.append(AuditLog.user_id == user_id)
    if action:
        if action.endswith(".*"):
            conditions.append(AuditLog.action.startswith(action[:-1], autoescape=True))
        else:
            conditions.append(AuditLog.action == action)
    if object_type is not None:
        conditions.append(AuditLog.object_type == object_type)
    if object_id is not None:
        conditions.append(AuditLog.object_id == str(object_id))
    if since is not None:
        conditions.append(AuditLog.at >= since)
    if until is not None:
        conditions.append(AuditLog.at < until)
    total = int(session.scalar(select(func.count()).select_from(AuditLog).where(*conditions)) or 0)
    entries = list(
        session.scalars(
            select(AuditLog)
            .where(*conditions)
            .order_by(AuditLog.at.desc(), AuditLog.id.desc())
            .limit(max(0, min(limit, 1000)))
            .offset(max(0, offset))
        )
    )
    return AuditPage(entries=entries, total=total)
