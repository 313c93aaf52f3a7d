"""Email and phone blacklists: ``/api/v1/blacklist/email`` and ``/api/v1/blacklist/phone``.

Adding and removing are audited. Removing keeps the row (inactive) so its history shows.
"""

from __future__ import annotations

import io
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from nurture.errors import NotFound
from nurture.records import blacklists
from nurture.records import models as m
from nurture.web.api.common import (
    AUTH_ERRORS,
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
from nurture.web.api.users import audit
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(prefix="/blacklist", tags=["blacklists"], responses={**AUTH_ERRORS, **NOT_FOUND})
Reader = Annotated[CurrentUser, Depends(require("blacklist.read"))]
Writer = Annotated[CurrentUser, Depends(require("blacklist.write"))]
Active = Annotated[
    bool | None, Query(description="Only blocked (true) or lifted (false) entries; default: blocked.")
]
Search = Annotated[str | None, Query(max_length=254, description="Contains (any case).")]


class EmailEntry(BaseModel):
    id: int
    email: str
    reason: str | None
    active: bool
    created_at: Timestamp
    updated_at: Timestamp


class PhoneEntry(BaseModel):
    id: int
    number: str
    reason: str | None
    active: bool
    created_at: Timestamp
    updated_at: Timestamp


class EmailIn(BaseModel):
    email: str = Field(min_length=1, max_length=254)
    reason: str | None = Field(default=None, max_length=200)


class EmailRemove(BaseModel):
    email: str = Field(min_length=1, max_length=254)


class PhoneIn(BaseModel):
    number: str = Field(min_length=1, max_length=64)
    country_code: str | None = Field(
        default=None, max_length=2, description="For numbers without international prefix."
    )
    reason: str | None = Field(default=None, max_length=200)


class PhoneRemove(BaseModel):
    number: str = Field(min_length=1, max_length=64)
    country_code: str | None = Field(default=None, max_length=2)


class ImportError_(BaseModel):
    line: int
    message: str


class Removed(BaseModel):
    removed: bool = Field(description="False when the entry was not blocked.")


def _email(row: m.EmailBlacklist) -> EmailEntry:
    return EmailEntry(
        id=row.id,
        email=row.email,
        reason=row.reason,
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _phone(row: m.PhoneBlacklist) -> PhoneEntry:
    return PhoneEntry(
        id=row.id,
        number=row.number,
        reason=row.reason,
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# --------------------------------------------------------------------------- email


@router.get("/email", summary="Blacklisted email addresses")
def list_email(
    _user: Reader,
    session: ReadSession,
    active: Active = True,
    q: Search = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[EmailEntry]:
    bl = m.EmailBlacklist
    stmt = select(bl)
    if active is not None:
        stmt = stmt.where(bl.active.is_(active))
    if q:
        stmt = stmt.where(func.lower(bl.email).contains(q.lower(), autoescape=True))
    rows, next_cursor = paginate(session, stmt, bl.id, limit=limit, cursor=cursor, offset=offset)
    return Page[EmailEntry](items=[_email(r) for r in rows], next_cursor=next_cursor)


@router.post("/email", status_code=201, summary="Block an email address")
def add_email(
    user: Writer, session: WriteSession, now: Now, body: EmailIn, request: Request
) -> EmailEntry:
    row_id = blacklists.blacklist_email(session=session, email=body.email, now=now, reason=body.reason)
    row = session.get(m.EmailBlacklist, row_id)
    assert row is not None
    audit(session, user, "blacklist.add", row, {"email": row.email, "reason": body.reason}, now=now, request=request)
    return _email(row)


@router.post("/email/remove", summary="Lift the block on an email address")
def remove_email(
    user: Writer, session: WriteSession, now: Now, body: EmailRemove, request: Request
) -> Removed:
    removed = blacklists.unblacklist_email(session=session, email=body.email, now=now)
    if removed:
        audit(session, user, "blacklist.remove", ("email_blacklist", None), {"email": body.email}, now=now, request=request)
    return Removed(removed=removed)


@router.delete("/email/{entry_id:int}", summary="Lift the block of an entry")
def delete_email(
    entry_id: Id, user: Writer, session: WriteSession, now: Now, request: Request
) -> EmailEntry:
    row = session.get(m.EmailBlacklist, entry_id)
    if row is None:
        raise NotFound(f"email blacklist entry {entry_id} does not exist", field="id")
    if blacklists.unblacklist_email(session=session, email=row.email, now=now):
        audit(session, user, "blacklist.remove", row, {"email": row.email}, now=now, request=request)
    return _email(row)


# --------------------------------------------------------------------------- phone


@router.get("/phone", summary="Blacklisted phone numbers")
def list_phone(
    _user: Reader,
    session: ReadSession,
    active: Active = True,
    q: Search = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[PhoneEntry]:
    bl = m.PhoneBlacklist
    stmt = select(bl)
    if active is not None:
        stmt = stmt.where(bl.active.is_(active))
    if q:
        stmt = stmt.where(bl.number.contains(q, autoescape=True))
    rows, next_cursor = paginate(session, stmt, bl.id, limit=limit, cursor=cursor, offset=offset)
    return Page[PhoneEntry](items=[_phone(r) for r in rows], next_cursor=next_cursor)


@router.post("/phone", status_code=201, summary="Block a phone number")
def add_phone(
    user: Writer, session: WriteSession, now: Now, body: PhoneIn, request: Request
) -> PhoneEntry:
    row_id = blacklists.blacklist_phone(
        session=session,
        number=body.number,
        now=now,
        reason=body.reason,
        country_code=body.country_code,
    )
    row = session.get(m.PhoneBlacklist, row_id)
    assert row is not None
    audit(session, user, "blacklist.add", row, {"number": row.number, "reason": body.reason}, now=now, request=request)
    return _phone(row)


@router.post("/phone/remove", summary="Lift the block on a phone number")
def remove_phone(
    user: Writer, session: WriteSession, now: Now, body: PhoneRemove, request: Request
) -> Removed:
    removed = blacklists.unblacklist_phone(
        session=session, number=body.number, now=now, country_code=body.country_code
    )
    if removed:
        audit(session, user, "blacklist.remove", ("phone_blacklist", None), {"number": body.number}, now=now, request=request)
    return Removed(removed=removed)


@router.delete("/phone/{entry_id:int}", summary="Lift the block of an entry")
def delete_phone(
    entry_id: Id, user: Writer, session: WriteSession, now: Now, request: Request
) -> PhoneEntry:
    row = session.get(m.PhoneBlacklist, entry_id)
    if row is None:
        raise NotFound(f"phone blacklist entry {entry_id} does not exist", field="id")
    if blacklists.unblacklist_phone(session=session, number=row.number, now=now):
        audit(session, user, "blacklist.remove", row, {"number": row.number}, now=now, request=request)
    return _phone(row)


# --------------------------------------------------------------------------- both

Kind = Literal["email", "phone"]


class HistoryEntry(BaseModel):
    value: str
    action: Literal["add", "remove"]
    reason: str | None
    source: str = Field(description="manual, import, bounce, unsubscribe, action or demo")
    at: Timestamp


class ImportReport(BaseModel):
    added: int
    already: int = Field(description="Values that were already blocked (or repeated in the file).")
    errors: list[ImportError_] = Field(description="Refused lines; the others were imported.")


@router.get("/{kind}/history", summary="Every block and unblock of one address or number")
def history(
    kind: Kind,
    _user: Reader,
    session: ReadSession,
    value: Annotated[str, Query(min_length=1, max_length=254)],
    country_code: Annotated[str | None, Query(max_length=2)] = None,
) -> list[HistoryEntry]:
    rows = blacklists.blacklist_history(
        session=session, kind=kind, value=value, country_code=country_code
    )
    return [
        HistoryEntry(value=r.value, action=r.action, reason=r.reason, source=r.source, at=r.created_at)  # type: ignore[arg-type]
        for r in rows
    ]


@router.post("/{kind}/import", summary="Block every address or number of a file (one per line)")
def import_file(
    kind: Kind,
    user: Writer,
    session: WriteSession,
    now: Now,
    request: Request,
    file: Annotated[UploadFile, File(description="One value per line, or a CSV whose first column holds them.")],
    reason: Annotated[str | None, Form(max_length=200)] = None,
    country_code: Annotated[str | None, Form(max_length=2)] = None,
) -> ImportReport:
    text = io.TextIOWrapper(file.file, encoding="utf-8-sig", errors="replace")
    result = blacklists.import_blacklist(
        session=session,
        kind=kind,
        lines=blacklists.blacklist_file_values(text),
        now=now,
        reason=reason,
        country_code=country_code,
    )
    audit(
        session,
        user,
        "blacklist.add",
        (f"{kind}_blacklist", None),
        {"import": file.filename, "added": result.added, "reason": reason},
        now=now,
        request=request,
    )
    return ImportReport(
        added=result.added,
        already=result.already,
        errors=[ImportError_(line=line, message=message) for line, message in result.errors],
    )
