from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.accounts import audit, logins, passwords, sessions, tokens, users
from nurture.accounts.logins import LoginRefused
from nurture.accounts.models import ApiToken, AuditLog, LoginAttempt, WebSession
from nurture.db import Database
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records.models import User

T0 = datetime(2026, 3, 2, 9, 0, 0)
PASSWORD = "s3cret-passphrase"


def _user(
    s: Session,
    login: str = "anna@example.com",
    role: str = "marketer",
    password: str | None = PASSWORD,
) -> User:
    return users.create_user(s, login=login, role=role, password=password, now=T0)


def _auth(
    db: Database, login: str, password: str, now: datetime, ip: str | None = "10.0.0.1"
) -> User | LoginRefused:
    with db.transaction() as s:
        return logins.authenticate(s, login, password, ip=ip, now=now)


# --- users ---------------------------------------------------------------------------------


def test_create_user_normalises_and_hashes(session: Session) -> None:
    user = users.create_user(
        session, login="  Anna@Example.COM ", role="admin", password=PASSWORD, now=T0
    )
    assert user.login == "anna@example.com"
    assert user.email == "anna@example.com"
    assert user.name == "anna"
    assert user.role == "admin" and user.active
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert passwords.verify_password(user.password_hash, PASSWORD)
    entry = session.scalars(select(AuditLog)).one()
    assert (entry.action, entry.actor, entry.object_type, entry.object_id) == (
        "user.create",
        "cli",
        "user_account",
        str(user.id),
    )
    assert entry.details == {"login": "anna@example.com", "role": "admin"}


def test_create_user_refusals(session: Session) -> None:
    _user(session)
    with pytest.raises(Conflict) as conflict:
        _user(session, login="ANNA@example.com")
    assert conflict.value.field == "login"
    with pytest.raises(ValidationError) as role:
        _user(session, login="bob@example.com", role="owner")
    assert role.value.field == "role" and "admin, marketer, viewer" in role.value.message
    with pytest.raises(ValidationError) as short:
        _user(session, login="bob@example.com", password="short")
    assert short.value.field == "password"
    with pytest.raises(ValidationError) as same:
        _user(session, login="bob@example.com", password="Bob@Example.com")
    assert same.value.code == "password_is_login"
    with pytest.raises(ValidationError):
        _user(session, login="two words")
    with pytest.raises(ValidationError):
        _user(session, login="   ")


def test_user_without_password_cannot_log_in(db: Database) -> None:
    with db.transaction() as s:
        _user(s, password=None)
    refused = _auth(db, "anna@example.com", "", T0)
    assert isinstance(refused, LoginRefused) and refused.reason == "invalid_credentials"


def test_change_role_and_last_admin_protection(session: Session) -> None:
    admin = _user(session, login="root@example.com", role="admin")
    marketer = _user(session)
    users.change_role(session, marketer, "viewer", now=T0, actor=admin)
    assert marketer.role == "viewer"
    with pytest.raises(Conflict, match="last active admin"):
        users.change_role(session, admin, "marketer", now=T0)
    with pytest.raises(Conflict, match="last active admin"):
        users.deactivate(session, admin, now=T0)
    with pytest.raises(ValidationError):
        users.change_role(session, marketer, "god", now=T0)
    users.change_role(session, marketer, "admin", now=T0)
    users.change_role(session, admin, "marketer", now=T0)  # another admin exists now
    changes = audit.list_audit(session, action="user.role_change").entries
    assert [(e.actor, e.details) for e in reversed(changes)] == [
        ("root@example.com", {"from": "marketer", "to": "viewer"}),
        ("cli", {"from": "viewer", "to": "admin"}),
        ("cli", {"from": "admin", "to": "marketer"}),
    ]
    assert changes[-1].user_id == admin.id


def test_set_password_ends_other_sessions(session: Session) -> None:
    user = _user(session)
    _, keep = sessions.create_session(session, user, now=T0)
    sessions.create_session(session, user, now=T0)
    users.set_password(session, user, "another passphrase", now=T0, keep_session_id=keep.id)
    assert user.password_hash is not None
    assert passwords.verify_password(user.password_hash, "another passphrase")
    assert session.scalars(select(WebSession.id)).all() == [keep.id]
    with pytest.raises(ValidationError):
        users.set_password(session, user, "tiny", now=T0)


def test_deactivate_ends_sessions_and_refuses_login_and_tokens(db: Database) -> None:
    with db.transaction() as s:
        _user(s, login="root@example.com", role="admin")
        user = _user(s)
        token, _ = tokens.create_token(s, user, "ci", now=T0)
        sid, _ = sessions.create_session(s, user, now=T0)
    with db.transaction() as s:
        users.deactivate(s, users.get_user_by_login(s, "anna@example.com"), now=T0)
    with db.transaction() as s:
        assert tokens.verify_token(s, token, now=T0) is None
        assert sessions.lookup_session(s, sid, T0) is None
        assert s.scalars(select(WebSession)).all() == []
    refused = _auth(db, "anna@example.com", PASSWORD, T0)
    assert isinstance(refused, LoginRefused) and refused.reason == "inactive"
    with db.transaction() as s:
        users.activate(s, users.get_user_by_login(s, "anna@example.com"), now=T0)
    assert isinstance(_auth(db, "anna@example.com", PASSWORD, T0), User)


def test_lookups(session: Session) -> None:
    user = _user(session)
    assert users.get_user(session, user.id) is user
    assert users.get_user_by_login(session, "ANNA@example.com") is user
    with pytest.raises(NotFound):
        users.get_user(session, 999)
    with pytest.raises(NotFound):
        users.get_user_by_login(session, "nobody@example.com")
    users.create_user(session, login="root@example.com", role="admin", now=T0)
    users.deactivate(session, user, now=T0)
    assert [u.login for u in users.list_users(session)] == [
        "anna@example.com",
        "root@example.com",
    ]
    assert [u.login for u in users.list_users(session, include_inactive=False)] == [
        "root@example.com"
    ]


# --- authenticate and throttling -----------------------------------------------------------


def test_authenticate_success_and_failure(db: Database) -> None:
    with db.transaction() as s:
        _user(s)
    ok = _auth(db, " ANNA@example.com", PASSWORD, T0)
    assert isinstance(ok, User) and ok.login == "anna@example.com"
    wrong = _auth(db, "anna@example.com", "wrong password", T0)
    unknown = _auth(db, "nobody@example.com", PASSWORD, T0)
    for refused in (wrong, unknown):
        assert isinstance(refused, LoginRefused)
        assert refused.reason == "invalid_credentials"
        assert refused.message == "wrong login or password"  # the same for both
        assert refused.retry_at is None and refused.retry_after_seconds(T0) is None
    with db.read() as s:
        outcomes = [
            (a.login, a.outcome) for a in s.scalars(select(LoginAttempt).order_by(LoginAttempt.id))
        ]
    assert outcomes == [
        ("anna@example.com", "success"),
        ("anna@example.com", "failure"),
        ("nobody@example.com", "failure"),
    ]


def test_lockout_after_five_failures_with_retry_time(
    db: Database, fast_hashing: PasswordHasher
) -> None:
    with db.transaction() as s:
        _user(s)
    for minute in range(5):
        refused = _auth(db, "anna@example.com", "bad guess!", T0 + timedelta(minutes=minute))
        assert isinstance(refused, LoginRefused) and refused.reason == "invalid_credentials"
    now = T0 + timedelta(minutes=5)
    locked = _auth(db, "anna@example.com", PASSWORD, now)  # even the right password
    assert isinstance(locked, LoginRefused)
    assert locked.reason == "locked" and locked.code == "login_locked"
    # The oldest of the five failures (T0) leaves the 15-minute window at T0+15.
    assert locked.retry_at == T0 + timedelta(minutes=15)
    assert locked.retry_after_seconds(now) == 600
    assert "try again after 2026-03-02 09:15 UTC (in 10 minutes)" in locked.message
    # Attempts while locked do not extend the lockout.
    for second in range(0, 600, 60):
        again = _auth(db, "anna@example.com", "bad guess!", now + timedelta(seconds=second))
        assert isinstance(again, LoginRefused) and again.retry_at == T0 + timedelta(minutes=15)
    # Other users are not affected.
    with db.transaction() as s:
        _user(s, login="bob@example.com")
    assert isinstance(_auth(db, "bob@example.com", PASSWORD, now), User)
    # Once the window has moved on, the right password works.
    assert isinstance(_auth(db, "anna@example.com", PASSWORD, T0 + timedelta(minutes=15)), User)


def test_sliding_window_retry_time_is_when_count_drops_below_limit(
    db: Database, fast_hashing: PasswordHasher
) -> None:
    with db.transaction() as s:
        _user(s)
    # Failures at T0, T0+10, T0+11, T0+12, T0+13 minutes.
    for minute in (0, 10, 11, 12, 13):
        _auth(db, "anna@example.com", "bad guess!", T0 + timedelta(minutes=minute))
    locked = _auth(db, "anna@example.com", PASSWORD, T0 + timedelta(minutes=14))
    assert isinstance(locked, LoginRefused) and locked.retry_at == T0 + timedelta(minutes=15)
    # At T0+15 the T0 failure has left: four remain, one more failure locks again until
    # the T0+10 failure leaves the window.
    again = _auth(db, "anna@example.com", "bad guess!", T0 + timedelta(minutes=15))
    assert isinstance(again, LoginRefused) and again.reason == "invalid_credentials"
    locked = _auth(db, "anna@example.com", PASSWORD, T0 + timedelta(minutes=16))
    assert isinstance(locked, LoginRefused) and locked.retry_at == T0 + timedelta(minutes=25)


def test_successful_login_resets_the_count(db: Database, fast_hashing: PasswordHasher) -> None:
    with db.transaction() as s:
        _user(s)
    for minute in range(4):
        _auth(db, "anna@example.com", "bad guess!", T0 + timedelta(minutes=minute))
    assert isinstance(_auth(db, "anna@example.com", PASSWORD, T0 + timedelta(minutes=4)), User)
    for minute in range(5, 9):
        refused = _auth(db, "anna@example.com", "bad guess!", T0 + timedelta(minutes=minute))
        assert isinstance(refused, LoginRefused) and refused.reason == "invalid_credentials"
    assert isinstance(_auth(db, "anna@example.com", PASSWORD, T0 + timedelta(minutes=9)), User)


def test_unknown_logins_are_locked_too(db: Database, fast_hashing: PasswordHasher) -> None:
    for minute in range(5):
        _auth(db, "ghost@example.com", "bad guess!", T0 + timedelta(minutes=minute), ip=None)
    locked = _auth(db, "ghost@example.com", "bad guess!", T0 + timedelta(minutes=5), ip=None)
    assert isinstance(locked, LoginRefused) and locked.reason == "locked"


def test_lockout_per_address(db: Database, fast_hashing: PasswordHasher) -> None:
    with db.transaction() as s:
        _user(s)
    # 20 failures from one address, spread over many logins (4 each: none locked by login).
    for i in range(20):
        _auth(
            db,
            f"user{i // 4}@example.com",
            "bad guess!",
            T0 + timedelta(seconds=i),
            ip="203.0.113.9",
        )
    now = T0 + timedelta(minutes=1)
    locked = _auth(db, "anna@example.com", PASSWORD, now, ip="203.0.113.9")
    assert isinstance(locked, LoginRefused) and locked.reason == "locked"
    assert locked.retry_at == T0 + timedelta(minutes=15)
    # Another address is not affected, and its success does not unlock the first one.
    assert isinstance(_auth(db, "anna@example.com", PASSWORD, now, ip="198.51.100.7"), User)
    locked = _auth(db, "anna@example.com", PASSWORD, now, ip="203.0.113.9")
    assert isinstance(locked, LoginRefused) and locked.reason == "locked"


def test_login_upgrades_outdated_hash(db: Database) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    with db.transaction() as s:
        user = _user(s, password=None)
        user.password_hash = old
    assert isinstance(_auth(db, "anna@example.com", PASSWORD, T0), User)
    with db.read() as s:
        stored = users.get_user_by_login(s, "anna@example.com").password_hash
    assert stored is not None and stored != old and not passwords.needs_rehash(stored)
    assert passwords.verify_password(stored, PASSWORD)


def test_prune_removes_old_attempts_and_dead_sessions(
    db: Database, fast_hashing: PasswordHasher
) -> None:
    with db.transaction() as s:
        user = _user(s)
        sessions.create_session(s, user, now=T0)
    _auth(db, "anna@example.com", "bad guess!", T0)
    later = T0 + timedelta(days=8)
    with db.transaction() as s:
        _, live = sessions.create_session(s, user, now=later)
        logins.prune(s, later)
    with db.read() as s:
        assert s.scalars(select(LoginAttempt)).all() == []
        assert s.scalars(select(WebSession.id)).all() == [live.id]


# --- API tokens ----------------------------------------------------------------------------


def test_token_create_verify_and_storage(db: Database) -> None:
    with db.transaction() as s:
        user = _user(s)
        token, row = tokens.create_token(s, user, "zapier", now=T0)
        token_id = row.id
    assert token.startswith(f"nrt_{token_id}_")
    assert tokens.parse_token(token) == (token_id, token.split("_", 2)[2])
    with db.read() as s:
        stored = s.get(ApiToken, token_id)
        assert stored is not None
        assert token.split("_", 2)[2] not in stored.secret_hash  # only the hash is kept
        assert len(stored.secret_hash) == 64
        assert token.startswith(stored.prefix) and len(stored.prefix) < len(token)
        assert stored.last_used_at is None and stored.active
        entry = audit.list_audit(s, action="token.create").entries[0]
        assert entry.object_id == str(token_id) and entry.details is not None
        assert token not in str(entry.details)
    with db.transaction() as s:
        found = tokens.verify_token(s, token, now=T0)
        assert found is not None and found.login == "anna@example.com"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # edited secret
        lambda t: t.replace("nrt_", "xyz_", 1),
        lambda t: "nrt_999999_" + t.split("_", 2)[2],  # another id
        lambda t: t.rsplit("_", 1)[0],
        lambda t: "",
        lambda t: "nrt_1_short",
        lambda t: "nrt_-1_" + "a" * 43,
        lambda t: t + "x" * 300,
    ],
)
def test_forged_tokens_are_refused(db: Database, mangle: object) -> None:
    with db.transaction() as s:
        token, _ = tokens.create_token(s, _user(s), now=T0)
    assert callable(mangle)
    with db.transaction() as s:
        assert tokens.verify_token(s, mangle(token), now=T0) is None


def test_last_used_is_updated_at_most_once_a_minute(db: Database) -> None:
    with db.transaction() as s:
        token, row = tokens.create_token(s, _user(s), now=T0)
        token_id = row.id

    def used(now: datetime) -> datetime | None:
        with db.transaction() as s:
            assert tokens.verify_token(s, token, now=now) is not None
        with db.read() as s:
            stored = s.get(ApiToken, token_id)
            assert stored is not None
            return stored.last_used_at

    t1 = T0 + timedelta(hours=1)
    assert used(t1) == t1
    assert used(t1 + timedelta(seconds=30)) == t1
    assert used(t1 + timedelta(seconds=59)) == t1
    assert used(t1 + timedelta(seconds=60)) == t1 + timedelta(seconds=60)


def test_revoke_token(db: Database) -> None:
    with db.transaction() as s:
        anna = _user(s)
        bob = _user(s, login="bob@example.com", role="viewer")
        root = _user(s, login="root@example.com", role="admin")
        token, row = tokens.create_token(s, anna, "ci", now=T0)
        other, _ = tokens.create_token(s, anna, "laptop", now=T0)
        token_id = row.id
    with db.transaction() as s:
        # Another non-admin cannot revoke it (and is not told it exists).
        with pytest.raises(NotFound):
            tokens.revoke_token(s, token_id, now=T0, actor=bob)
    with db.transaction() as s:
        revoked = tokens.revoke_token(s, token_id, now=T0 + timedelta(minutes=1), actor=root)
        assert revoked.revoked_at == T0 + timedelta(minutes=1)
        # Idempotent: the first revocation time is kept, and audited once.
        again = tokens.revoke_token(s, token_id, now=T0 + timedelta(minutes=2), actor=anna)
        assert again.revoked_at == T0 + timedelta(minutes=1)
    with db.transaction() as s:
        assert tokens.verify_token(s, token, now=T0 + timedelta(minutes=3)) is None
        assert tokens.verify_token(s, other, now=T0 + timedelta(minutes=3)) is not None
        revocations = audit.list_audit(s, action="token.revoke").entries
        assert [(e.actor, e.object_id) for e in revocations] == [
            ("root@example.com", str(token_id))
        ]
        with pytest.raises(NotFound):
            tokens.revoke_token(s, 12345, now=T0)
        assert [t.name for t in tokens.list_tokens(s, user_id=anna.id)] == ["ci", "laptop"]
        assert [t.name for t in tokens.list_tokens(s, include_revoked=False)] == ["laptop"]
        assert tokens.list_tokens(s, user_id=bob.id) == []


def test_token_refusals(session: Session) -> None:
    user = _user(session)
    with pytest.raises(ValidationError):
        tokens.create_token(session, user, "   ", now=T0)
    with pytest.raises(ValidationError):
        tokens.create_token(session, user, "x" * 101, now=T0)
    users.create_user(session, login="root@example.com", role="admin", now=T0)
    users.deactivate(session, user, now=T0)
    with pytest.raises(ValidationError, match="deactivated"):
        tokens.create_token(session, user, "ci", now=T0)


# --- web sessions --------------------------------------------------------------------------


def test_session_lifetime(db: Database) -> None:
    with db.transaction() as s:
        user = _user(s)
        sid, row = sessions.create_session(s, user, now=T0, ip="10.0.0.1", user_agent="pytest")
        session_id = row.id
    with db.read() as s:
        found = sessions.lookup_session(s, sid, T0 + timedelta(hours=1))
        assert found is not None and found[1].login == "anna@example.com"
        assert found[0].csrf_token and found[0].csrf_token != sid
        assert sessions.lookup_session(s, sid + "x", T0) is None
        assert sessions.lookup_session(s, "", T0) is None
        # Idle for 12 hours: gone.
        assert sessions.lookup_session(s, sid, T0 + sessions.SESSION_IDLE_TIMEOUT) is None
    # Activity keeps it alive, up to the maximum age.
    now = T0
    while now + timedelta(hours=10) < T0 + sessions.SESSION_MAX_AGE:
        now += timedelta(hours=10)
        with db.transaction() as s:
            found = sessions.lookup_session(s, sid, now)
            assert found is not None
            sessions.touch_session(s, session_id, now)
    with db.read() as s:
        assert sessions.lookup_session(s, sid, T0 + sessions.SESSION_MAX_AGE) is None
    with db.transaction() as s:
        sessions.end_session(s, sid)
        assert s.get(WebSession, session_id) is None


# --- audit log -----------------------------------------------------------------------------


def test_audit_and_list_audit(session: Session) -> None:
    admin = _user(session, login="root@example.com", role="admin")
    for minute, action, obj in [
        (1, "campaign.start", ("campaign", 7)),
        (2, "campaign.stop", ("campaign", 7)),
        (3, "blacklist.add", ("blacklist", "a@example.com")),
        (4, "campaign.delete", ("campaign", 8)),
    ]:
        audit.audit(
            session,
            admin,
            action,
            obj,
            {"when": T0, "n": minute},
            now=T0 + timedelta(minutes=minute),
            ip="10.1.1.1",
        )
    page = audit.list_audit(session, action="campaign.*")
    assert page.total == 3
    assert [e.action for e in page.entries] == [
        "campaign.delete",
        "campaign.stop",
        "campaign.start",
    ]
    assert page.entries[-1].details == {"when": T0.isoformat(), "n": 1}
    assert page.entries[-1].ip == "10.1.1.1" and page.entries[-1].actor == "root@example.com"
    assert audit.list_audit(session, object_type="campaign", object_id=7).total == 2
    assert (
        audit.list_audit(session, action="blacklist.add").entries[0].object_id == "a@example.com"
    )
    window = audit.list_audit(
        session, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4)
    )
    assert [e.action for e in window.entries] == ["blacklist.add", "campaign.stop"]
    paged = audit.list_audit(session, user_id=admin.id, limit=2, offset=1)
    assert paged.total == 4 and [e.action for e in paged.entries] == [
        "blacklist.add",
        "campaign.stop",
    ]
    system = audit.audit(session, None, "campaign.stop", None, None, now=T0, actor="system")
    assert system.actor == "system" and system.user_id is None and system.object_type is None
    with pytest.raises(ValueError):
        audit.audit(session, admin, "Campaign Start", now=T0)


def test_audit_survives_user_deletion(db: Database) -> None:
    with db.transaction() as s:
        user = _user(s)
        audit.audit(s, user, "campaign.start", ("campaign", 1), now=T0)
        user_id = user.id
    with db.transaction() as s:
        doomed = s.get(User, user_id)
        assert doomed is not None
        s.delete(doomed)
    with db.read() as s:
        entry = audit.list_audit(s, action="campaign.start").entries[0]
        assert entry.user_id is None and entry.actor == "anna@example.com"


def test_failures_from_one_address_do_not_lock_the_owner_elsewhere(
    db: Database, fast_hashing: PasswordHasher
) -> None:
    with db.transaction() as s:
        _user(s)
    for second in range(5):
        _auth(db, "anna@example.com", "bad guess!", T0 + timedelta(seconds=second), ip="203.0.113.9")
    now = T0 + timedelta(minutes=1)
    locked = _auth(db, "anna@example.com", PASSWORD, now, ip="203.0.113.9")
    assert isinstance(locked, LoginRefused) and locked.reason == "locked"
    assert isinstance(_auth(db, "anna@example.com", PASSWORD, now, ip="198.51.100.7"), User)


def test_distributed_guessing_meets_a_capped_progressive_delay(
    db: Database, fast_hashing: PasswordHasher
) -> None:
    with db.transaction() as s:
        _user(s)
    home = "198.51.100.7"
    assert isinstance(_auth(db, "anna@example.com", PASSWORD, T0, ip=home), User)
    at = T0 + timedelta(minutes=1)
    for i in range(logins.BACKOFF_AFTER_FAILURES):  # one failure from each of ten addresses
        _auth(db, "anna@example.com", "bad guess!", at, ip=f"203.0.113.{i}")
    # An eleventh address waits 1 s after the newest failure …
    slowed = _auth(db, "anna@example.com", "bad guess!", at, ip="192.0.2.1")
    assert isinstance(slowed, LoginRefused) and slowed.reason == "locked"
    assert slowed.retry_at == at + timedelta(seconds=1)
    assert "(in 1 seconds)" in slowed.message
    # … and the delay doubles with each failure, never beyond a minute.
    when = at + timedelta(seconds=1)
    delays = []
    for k in range(8):
        refused = _auth(db, "anna@example.com", "bad guess!", when, ip=f"192.0.2.{10 + k}")
        assert isinstance(refused, LoginRefused) and refused.reason == "invalid_credentials"
        blocked = _auth(db, "anna@example.com", PASSWORD, when, ip="192.0.2.2")
        assert isinstance(blocked, LoginRefused) and blocked.retry_at is not None
        delays.append((blocked.retry_at - when).total_seconds())
        when = blocked.retry_at
    assert delays == [2, 4, 8, 16, 32, 60, 60, 60]
    # the owner's usual address is exempt; a new address gets in once the delay is over
    assert isinstance(_auth(db, "anna@example.com", PASSWORD, when, ip=home), User)
