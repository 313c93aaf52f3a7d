"""First start: a one-time link where the first administrator chooses a login and password.

While no active administrator can sign in (no admin has a password — the state of a fresh
database, demo users included), ``nurture serve`` prints a setup link. The token in it is
signed with the secret key and carries its expiry (one hour), so any web process of the
installation accepts it and nothing is stored; it is single use because completing the
setup gives an administrator a password, after which :func:`setup_needed` is false and the
setup page answers 404.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.accounts import audit, users
from nurture.errors import NurtureError, ValidationError
from nurture.records.models import User

SETUP_TOKEN_LIFETIME = timedelta(hours=1)
_PURPOSE = b"nurture.setup.v1"


class SetupRefused(NurtureError):
    """The setup link is invalid, expired or already used."""

    code = "setup_refused"


def setup_needed(session: Session) -> bool:
    """True while no active administrator has a password (nobody can sign in to administer)."""
    count = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.active.is_(True), User.password_hash.is_not(None))
    )
    return not count


def _mac(secret_key: str, expires: int) -> str:
    key = hmac.new(secret_key.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()
    digest = hmac.new(key, str(expires).encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode("ascii")


def make_setup_token(secret_key: str, *, now: datetime) -> str:
    """A token valid for :data:`SETUP_TOKEN_LIFETIME` from ``now``."""
    expires = int((now + SETUP_TOKEN_LIFETIME).timestamp())
    return f"{expires}.{_mac(secret_key, expires)}"


def check_setup_token(secret_key: str, token: str | None, *, now: datetime) -> None:
    """Raise :class:`SetupRefused` unless ``token`` is authentic and not expired."""
    expires_text, _, mac = (token or "").partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12 or not mac:
        raise SetupRefused("this setup link is not valid; use the link the server printed")
    expires = int(expires_text)
    if not hmac.compare_digest(mac, _mac(secret_key, expires)):
        raise SetupRefused("this setup link is not valid; use the link the server printed")
    if now.timestamp() > expires:
        raise SetupRefused(
            "this setup link has expired; restart the server to print a new one"
        )


def complete_setup(
    session: Session,
    *,
    secret_key: str,
    token: str | None,
    login: str,
    password: str,
    name: str | None,
    now: datetime,
) -> User:
    """Create (or, for an existing user of that login, promote) the first administrator.

    Refused when the token is wrong or expired, or when setup was already completed.
    """
    check_setup_token(secret_key, token, now=now)
    if not setup_needed(session):
        raise SetupRefused("setup is already complete; sign in instead")
    if not password:
        raise ValidationError("choose a password", field="password")
    user = users.find_user(session, users.normalize_login(login))
    if user is None:
        return users.create_user(
            session, login=login, role="admin", name=name, password=password, now=now
        )
    user.role = "admin"
    user.active = True
    if name and name.strip():
        user.name = name.strip()[:200]
    users.set_password(session, user, password, now=now)
    audit.audit(session, None, "user.setup_admin", user, {"login": user.login}, now=now)
    return user
