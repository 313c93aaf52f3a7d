"""Users (admins only), the caller's own account and API tokens, and the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from nurture.accounts import audit as account_audit
from nurture.accounts import tokens, users
from nurture.accounts.models import ApiToken, AuditLog
from nurture.accounts.permissions import actions_for
from nurture.errors import NotFound
from nurture.records.models import User
from nurture.web.api.common import (
    AUTH_ERRORS,
    CONFLICT,
    MAX_ID,
    NOT_FOUND,
    Cursor,
    Id,
    Limit,
    Now,
    Offset,
    Page,
    ReadSession,
    Timestamp,
    WriteSession,
    paginate,
)
from nurture.web.security.auth import CurrentUser, require
from nurture.web.security.config import client_ip

Role = Literal["admin", "marketer", "viewer"]

users_router = APIRouter(prefix="/users", tags=["users"], responses={**AUTH_ERRORS, **NOT_FOUND})
me_router = APIRouter(prefix="/me", tags=["account"], responses={**AUTH_ERRORS, **NOT_FOUND})
audit_router = APIRouter(prefix="/audit", tags=["audit"], responses=AUTH_ERRORS)

UsersRead = Annotated[CurrentUser, Depends(require("users.read"))]
UsersWrite = Annotated[CurrentUser, Depends(require("users.write"))]
Account = Annotated[CurrentUser, Depends(require("account.manage"))]
AuditRead = Annotated[CurrentUser, Depends(require("audit.read"))]


class UserOut(BaseModel):
    id: int
    login: str
    name: str
    email: str | None
    role: str
    active: bool
    created_at: Timestamp


class UserIn(BaseModel):
    login: str = Field(min_length=1, max_length=254, description="Usually the email address.")
    role: Role
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    password: str | None = Field(
        default=None, max_length=1024, description="Optional: API-only users need none."
    )


class UserPatch(BaseModel):
    role: Role | None = None
    active: bool | None = None
    password: str | None = Field(default=None, max_length=1024)


class TokenOut(BaseModel):
    id: int
    user_id: int
    name: str
    prefix: str = Field(description="The first characters of the token, to tell tokens apart.")
    created_at: Timestamp
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None


class NewToken(TokenOut):
    token: str = Field(description="The token itself: shown once, never stored in clear.")


class TokenIn(BaseModel):
    name: str = Field(default="API token", min_length=1, max_length=100)


class MeOut(UserOut):
    via: str = Field(description="How this request authenticated: token or session.")
    actions: list[str] = Field(description="What the user's role allows.")


class AuditEntry(BaseModel):
    id: int
    at: Timestamp
    user_id: int | None
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    details: dict[str, Any] | None
    ip: str | None


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        login=user.login,
        name=user.name,
        email=user.email,
        role=user.role,
        active=user.active,
        created_at=user.created_at,
    )


def token_out(row: ApiToken) -> TokenOut:
    return TokenOut(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _new_token(token: str, row: ApiToken) -> NewToken:
    return NewToken(token=token, **token_out(row).model_dump())


# --------------------------------------------------------------------------- users (admin)


@users_router.get("", summary="List users")
def list_users(
    _user: UsersRead,
    session: ReadSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[UserOut]:
    rows, next_cursor = paginate(
        session, select(User), User.id, limit=limit, cursor=cursor, offset=offset
    )
    return Page[UserOut](items=[user_out(u) for u in rows], next_cursor=next_cursor)


@users_router.post("", status_code=201, summary="Create a user", responses=CONFLICT)
def create_user(actor: UsersWrite, session: WriteSession, now: Now, body: UserIn) -> UserOut:
    user = users.create_user(
        session,
        login=body.login,
        role=body.role,
        name=body.name,
        email=body.email,
        password=body.password,
        now=now,
        actor=actor,
    )
    return user_out(user)


@users_router.get("/{user_id}", summary="Get a user")
def get_user(user_id: Id, _user: UsersRead, session: ReadSession) -> UserOut:
    return user_out(users.get_user(session, user_id))


@users_router.patch(
    "/{user_id}",
    summary="Change a user's role, activate or deactivate, set the password",
    responses=CONFLICT,
)
def patch_user(
    user_id: Id, actor: UsersWrite, session: WriteSession, now: Now, body: UserPatch
) -> UserOut:
    user = users.get_user(session, user_id)
    if body.role is not None:
        users.change_role(session, user, body.role, now=now, actor=actor)
    if body.active is True:
        users.activate(session, user, now=now, actor=actor)
    elif body.active is False:
        users.deactivate(session, user, now=now, actor=actor)
    if body.password is not None:
        users.set_password(session, user, body.password, now=now, actor=actor)
    session.flush()
    return user_out(user)


@users_router.get("/{user_id}/tokens", summary="A user's API tokens")
def list_user_tokens(user_id: Id, _user: UsersRead, session: ReadSession) -> list[TokenOut]:
    users.get_user(session, user_id)
    return [token_out(t) for t in tokens.list_tokens(session, user_id=user_id)]


@users_router.post(
    "/{user_id}/tokens", status_code=201, summary="Create an API token for a user"
)
def create_user_token(
    user_id: Id, actor: UsersWrite, session: WriteSession, now: Now, body: TokenIn
) -> NewToken:
    user = users.get_user(session, user_id)
    token, row = tokens.create_token(session, user, body.name, now=now, actor=actor)
    return _new_token(token, row)


# --------------------------------------------------------------------------- own account


@me_router.get("", summary="The authenticated user")
def me(user: Account, session: ReadSession) -> MeOut:
    row = users.get_user(session, user.id)
    return MeOut(
        **user_out(row).model_dump(), via=user.via, actions=sorted(actions_for(user.role))
    )


@me_router.get("/tokens", summary="My API tokens")
def my_tokens(user: Account, session: ReadSession) -> list[TokenOut]:
    return [token_out(t) for t in tokens.list_tokens(session, user_id=user.id)]


@me_router.post("/tokens", status_code=201, summary="Create an API token (shown once)")
def create_my_token(user: Account, session: WriteSession, now: Now, body: TokenIn) -> NewToken:
    row_user = users.get_user(session, user.id)
    token, row = tokens.create_token(session, row_user, body.name, now=now, actor=user)
    return _new_token(token, row)


@me_router.post("/tokens/{token_id}/revoke", summary="Revoke an API token")
def revoke_token(token_id: Id, user: Account, session: WriteSession, now: Now) -> TokenOut:
    """Admins may revoke any token; other users only their own."""
    row = tokens.revoke_token(session, token_id, now=now, actor=user)
    return token_out(row)


# --------------------------------------------------------------------------- audit log


@audit_router.get("", summary="The audit log, newest first")
def list_audit(
    _user: AuditRead,
    session: ReadSession,
    action: Annotated[
        str | None, Query(max_length=64, description="e.g. campaign.start, or campaign.*")
    ] = None,
    object_type: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=64)] = None,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Limit = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Page[AuditEntry]:
    page = account_audit.list_audit(
        session,
        action=action,
        object_type=object_type,
        object_id=object_id,
        user_id=user_id,
        limit=limit,
        offset=offset,
    )
    return Page[AuditEntry](items=[_audit_out(e) for e in page.entries], total=page.total)


def _audit_out(entry: AuditLog) -> AuditEntry:
    return AuditEntry(
        id=entry.id,
        at=entry.at,
        user_id=entry.user_id,
        actor=entry.actor,
        action=entry.action,
        object_type=entry.object_type,
        object_id=entry.object_id,
        details=entry.details,
        ip=entry.ip,
    )


def audit(
    session: Any,
    actor: CurrentUser,
    action: str,
    obj: Any,
    details: dict[str, Any] | None,
    *,
    now: Timestamp,
    request: Any = None,
) -> None:
    """Write an audit entry for an API action (the caller's address when known)."""
    account_audit.audit(
        session,
        actor,
        action,
        obj,
        details,
        now=now,
        ip=client_ip(request) if request is not None else None,
    )


__all__ = ["NotFound", "audit", "audit_router", "me_router", "users_router"]
