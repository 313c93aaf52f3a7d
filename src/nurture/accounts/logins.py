"""Password logins with throttling, and the housekeeping of login attempts and sessions.

Every attempt is recorded (:class:`LoginAttempt`); :func:`login_locked_until` reads them to
refuse guessing, :func:`authenticate` checks a login and password.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from nurture.accounts import passwords
from nurture.accounts.models import LoginAttempt
from nurture.accounts.sessions import prune_sessions
from nurture.accounts.users import find_user, normalize_login
from nurture.errors import NurtureError
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


def prune(session: Session, now: datetime) -> None:
    """Housekeeping: delete expired sessions and old login attempts."""
    prune_sessions(session, now)
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - LOGIN_ATTEMPT_RETENTION))
