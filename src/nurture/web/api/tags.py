"""Tags: ``/api/v1/tags`` (the record services of the ``tag`` model, with a typed schema)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from nurture.records import models as m
from nurture.records import service as records
from nurture.web.api.common import (
    AUTH_ERRORS,
    CONFLICT,
    NOT_FOUND,
    Cursor,
    Id,
    Limit,
    Now,
    Offset,
    Page,
    ReadSession,
    WriteSession,
    paginate,
)
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(prefix="/tags", tags=["tags"], responses={**AUTH_ERRORS, **NOT_FOUND})
Reader = Annotated[CurrentUser, Depends(require("tags.read"))]
Writer = Annotated[CurrentUser, Depends(require("tags.write"))]


class TagOut(BaseModel):
    id: int
    name: str
    color: int


class TagIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    color: int = Field(default=0, ge=0, le=11)


class TagPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    color: int | None = Field(default=None, ge=0, le=11)


def _out(tag: m.Tag) -> TagOut:
    return TagOut(id=tag.id, name=tag.name, color=tag.color)


@router.get("", summary="List tags")
def list_tags(
    _user: Reader,
    session: ReadSession,
    q: Annotated[str | None, Query(max_length=100, description="Name contains (any case).")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[TagOut]:
    stmt = select(m.Tag)
    if q:
        stmt = stmt.where(func.lower(m.Tag.name).contains(q.lower(), autoescape=True))
    rows, next_cursor = paginate(session, stmt, m.Tag.id, limit=limit, cursor=cursor, offset=offset)
    return Page[TagOut](items=[_out(t) for t in rows], next_cursor=next_cursor)


@router.post("", status_code=201, summary="Create a tag", responses=CONFLICT)
def create_tag(_user: Writer, session: WriteSession, now: Now, body: TagIn) -> TagOut:
    tag_id = records.create_record(
        session=session, model="tag", values=body.model_dump(), now=now
    )
    return _out(records.get_record(session=session, model="tag", record_id=tag_id))


@router.get("/{tag_id}", summary="Get a tag")
def get_tag(tag_id: Id, _user: Reader, session: ReadSession) -> TagOut:
    return _out(records.get_record(session=session, model="tag", record_id=tag_id))


@router.patch("/{tag_id}", summary="Rename or recolour a tag", responses=CONFLICT)
def patch_tag(tag_id: Id, _user: Writer, session: WriteSession, now: Now, body: TagPatch) -> TagOut:
    values = body.model_dump(exclude_unset=True, exclude_none=True)
    records.update_record(session=session, model="tag", record_id=tag_id, values=values, now=now)
    return _out(records.get_record(session=session, model="tag", record_id=tag_id))


@router.delete("/{tag_id}", status_code=204, summary="Delete a tag", responses=CONFLICT)
def delete_tag(tag_id: Id, _user: Writer, session: WriteSession, now: Now) -> Response:
    records.delete_records(session=session, model="tag", ids=[tag_id], now=now)
    return Response(status_code=204)
