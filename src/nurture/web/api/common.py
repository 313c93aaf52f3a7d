"""Shared pieces of the REST API: database sessions, the clock, ids, pagination, schemas.

Routes take a session from :data:`WriteSession` (one write transaction, committed when the
route returns, rolled back when it raises) or :data:`ReadSession` (a read-only session that
never takes SQLite's write lock). Both resolve the current user first, so the
authentication's own short transactions never run while the request holds the write lock.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, HTTPException, Path, Query, Request
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.orm import Session

from nurture.clock import utcnow
from nurture.db import Database
from nurture.errors import NotFound, ValidationError
from nurture.web.security.auth import CurrentUser, current_user

#: ids are 32-bit integers on PostgreSQL: larger values can name no row
MAX_ID = 2_147_483_647
MAX_PAGE = 500
DEFAULT_PAGE = 50


# --------------------------------------------------------------------------- timestamps


def as_utc(value: datetime) -> datetime:
    """Stored timestamps are naive UTC; the API writes them with their offset (``Z``)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Timestamp = Annotated[datetime, AfterValidator(as_utc)]


def utc_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with naive timestamps marked as UTC."""
    return {k: as_utc(v) if isinstance(v, datetime) else v for k, v in values.items()}


# --------------------------------------------------------------------------- errors


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable error code, e.g. invalid, not_found.")
    message: str = Field(description="What went wrong, in words.")
    field: str | None = Field(
        default=None, description="The field, filter path or parameter at fault, if any."
    )


class ErrorResponse(BaseModel):
    """The body of every error response of the API."""

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


#: error responses every route may give
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("No valid credentials (missing, unknown or revoked token)."),
    403: _error("The user's role does not allow the operation."),
    422: _error("Invalid input: the error names the field at fault."),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("No such object.")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _error("The operation conflicts with existing data or the current state.")
}


# --------------------------------------------------------------------------- database and clock


def _database(request: Request) -> Database:
    db = request.app.state.runtime.db
    assert isinstance(db, Database)
    return db


def _write_session(
    request: Request, _user: Annotated[CurrentUser, Depends(current_user)]
) -> Iterator[Session]:
    with _database(request).transaction() as session:
        yield session


def _read_session(
    request: Request, _user: Annotated[CurrentUser, Depends(current_user)]
) -> Iterator[Session]:
    with _database(request).read() as session:
        yield session


def get_db(request: Request, _user: Annotated[CurrentUser, Depends(current_user)]) -> Database:
    """The database itself, for services that manage their own transactions (CSV import)."""
    return _database(request)


def get_now(request: Request) -> datetime:
    """The request's time: the security clock (tests may set it), else the wall clock."""
    config = getattr(request.app.state, "security", None)
    clock = getattr(config, "clock", None)
    value = clock() if callable(clock) else utcnow()
    assert isinstance(value, datetime)
    return value


WriteSession = Annotated[Session, Depends(_write_session, scope="function")]
ReadSession = Annotated[Session, Depends(_read_session, scope="function")]
Db = Annotated[Database, Depends(get_db)]
Now = Annotated[datetime, Depends(get_now)]

Id = Annotated[int, Path(ge=1, le=MAX_ID, description="Object id.")]
Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"Page size (at most {MAX_PAGE}).")
]
Offset = Annotated[int | None, Query(ge=0, le=10**9, description="Rows to skip (instead of a cursor).")]
Cursor = Annotated[
    str | None,
    Query(max_length=64, description="The `next_cursor` of the previous page."),
]


# --------------------------------------------------------------------------- pagination

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page."
    )
    total: int | None = Field(default=None, description="Total matching rows, when asked for.")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    kind, _, value = raw.partition(":")
    if kind != "id" or not value.isdigit() or len(value) > 12:
        raise ValidationError("invalid cursor: pass the next_cursor of a previous page", field="cursor")
    return int(value)


def paginate(
    session: Session,
    stmt: Select[Any],
    id_column: Any,
    *,
    limit: int,
    cursor: str | None,
    offset: int | None,
) -> tuple[list[Any], str | None]:
    """One page of ``stmt`` ordered by ``id_column`` (keyset with a cursor, or offset)."""
    if cursor is not None and offset is not None:
        raise ValidationError("give either cursor or offset, not both", field="cursor")
    stmt = stmt.order_by(id_column)
    if cursor is not None:
        stmt = stmt.where(id_column > decode_cursor(cursor))
    elif offset:
        stmt = stmt.offset(offset)
    rows = list(session.scalars(stmt.limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(int(rows[-1].id)) if has_more and rows else None
    return rows, next_cursor


def one_or_404(obj: T | None, what: str, ident: int) -> T:
    if obj is None:
        raise NotFound(f"{what} {ident} does not exist", field="id")
    return obj


def ids_of(rows: Sequence[Any]) -> list[int]:
    return [int(r.id) for r in rows]


# --------------------------------------------------------------------------- authorisation


def check(user: CurrentUser, action: str) -> None:
    """403 unless ``user``'s role allows ``action`` (for permissions that depend on input)."""
    if not user.can(action):
        raise HTTPException(
            status_code=403,
            detail={"code": "forbidden", "message": f"your role ({user.role}) does not allow {action}"},
        )


def enum_of(values: Sequence[str]) -> dict[str, Any]:
    """``json_schema_extra`` documenting the allowed values of a string."""
    return {"enum": list(values)}


# --------------------------------------------------------------------------- bodies


def given(body: BaseModel) -> dict[str, Any]:
    """The fields the client sent (an explicit null included)."""
    return {name: getattr(body, name) for name in body.model_fields_set}


#: a filter in a body: a domain as a JSON list, or as text
Domain = list[Any] | str | None
DOMAIN_DOC = (
    "Filter as a domain (JSON list, or text: JSON or Odoo Python-literal); "
    "empty or null: all records."
)
OptionalId = Annotated[int | None, Field(default=None, ge=1, le=MAX_ID)]


def stored_domain(text: str | None) -> list[Any]:
    """A stored filter (JSON text) as the list the API answers."""
    value = json.loads(text or "[]")
    return list(value) if isinstance(value, list) else []


class FilterCount(BaseModel):
    domain: list[Any] = Field(description="The filter (for an activity: the applied filter).")
    count: int = Field(description="Records matching it now (#records).")
