"""Mailing lists and their subscriptions: ``/api/v1/lists``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.errors import NotFound
from nurture.records import mailing_lists
from nurture.records import models as m
from nurture.records import service as records
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

router = APIRouter(prefix="/lists", tags=["mailing lists"], responses={**AUTH_ERRORS, **NOT_FOUND})
Reader = Annotated[CurrentUser, Depends(require("lists.read"))]
Writer = Annotated[CurrentUser, Depends(require("lists.write"))]


class MailingListOut(BaseModel):
    id: int
    name: str
    active: bool
    created_at: Timestamp
    subscribers: int = Field(description="Subscriptions not opted out.")
    opted_out: int


class MailingListIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class MailingListPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    active: bool | None = None


class SubscriptionOut(BaseModel):
    id: int
    contact_id: int
    list_id: int
    opted_out: bool
    subscribed_at: Timestamp
    unsubscribed_at: Timestamp | None


class SubscribeIn(BaseModel):
    contact_id: int = Field(ge=1, le=MAX_ID, description="A mailing contact.")


def _counts(session: Session, list_ids: list[int]) -> dict[int, tuple[int, int]]:
    if not list_ids:
        return {}
    sub = m.MailingSubscription
    rows = session.execute(
        select(sub.list_id, sub.opted_out, func.count())
        .where(sub.list_id.in_(list_ids))
        .group_by(sub.list_id, sub.opted_out)
    ).all()
    out: dict[int, tuple[int, int]] = {}
    for list_id, opted_out, n in rows:
        subscribed, out_count = out.get(list_id, (0, 0))
        if opted_out:
            out_count += int(n)
        else:
            subscribed += int(n)
        out[list_id] = (subscribed, out_count)
    return out


def _out(row: m.MailingList, counts: dict[int, tuple[int, int]]) -> MailingListOut:
    subscribed, opted_out = counts.get(row.id, (0, 0))
    return MailingListOut(
        id=row.id,
        name=row.name,
        active=row.active,
        created_at=row.created_at,
        subscribers=subscribed,
        opted_out=opted_out,
    )


def _one(session: Session, list_id: int) -> MailingListOut:
    row = records.get_record(session=session, model="mailing_list", record_id=list_id)
    return _out(row, _counts(session, [list_id]))


def _sub_out(row: m.MailingSubscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=row.id,
        contact_id=row.contact_id,
        list_id=row.list_id,
        opted_out=row.opted_out,
        subscribed_at=row.subscribed_at,
        unsubscribed_at=row.unsubscribed_at,
    )


@router.get("", summary="List mailing lists")
def list_lists(
    _user: Reader,
    session: ReadSession,
    q: Annotated[str | None, Query(max_length=200, description="Name contains (any case).")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[MailingListOut]:
    stmt = select(m.MailingList)
    if q:
        stmt = stmt.where(func.lower(m.MailingList.name).contains(q.lower(), autoescape=True))
    rows, next_cursor = paginate(
        session, stmt, m.MailingList.id, limit=limit, cursor=cursor, offset=offset
    )
    counts = _counts(session, [r.id for r in rows])
    return Page[MailingListOut](items=[_out(r, counts) for r in rows], next_cursor=next_cursor)


@router.post("", status_code=201, summary="Create a mailing list", responses=CONFLICT)
def create_list(_user: Writer, session: WriteSession, now: Now, body: MailingListIn) -> MailingListOut:
    list_id = records.create_record(
        session=session, model="mailing_list", values=body.model_dump(), now=now
    )
    return _one(session, list_id)


@router.get("/{list_id}", summary="Get a mailing list")
def get_list(list_id: Id, _user: Reader, session: ReadSession) -> MailingListOut:
    return _one(session, list_id)


@router.patch("/{list_id}", summary="Rename or (un)archive a mailing list", responses=CONFLICT)
def patch_list(
    list_id: Id, _user: Writer, session: WriteSession, now: Now, body: MailingListPatch
) -> MailingListOut:
    values = body.model_dump(exclude_unset=True, exclude_none=True)
    records.update_record(
        session=session, model="mailing_list", record_id=list_id, values=values, now=now
    )
    return _one(session, list_id)


@router.delete("/{list_id}", status_code=204, summary="Delete a mailing list", responses=CONFLICT)
def delete_list(list_id: Id, _user: Writer, session: WriteSession, now: Now) -> Response:
    records.delete_records(session=session, model="mailing_list", ids=[list_id], now=now)
    return Response(status_code=204)


@router.get("/{list_id}/subscriptions", summary="Subscriptions of a list")
def list_subscriptions(
    list_id: Id,
    _user: Reader,
    session: ReadSession,
    opted_out: Annotated[bool | None, Query(description="Only opted-out (true) or not.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[SubscriptionOut]:
    records.get_record(session=session, model="mailing_list", record_id=list_id)
    sub = m.MailingSubscription
    stmt = select(sub).where(sub.list_id == list_id)
    if opted_out is not None:
        stmt = stmt.where(sub.opted_out.is_(opted_out))
    rows, next_cursor = paginate(session, stmt, sub.id, limit=limit, cursor=cursor, offset=offset)
    return Page[SubscriptionOut](items=[_sub_out(r) for r in rows], next_cursor=next_cursor)


def _subscription(session: Session, sub_id: int) -> SubscriptionOut:
    row = session.get(m.MailingSubscription, sub_id)
    if row is None:  # pragma: no cover - the service just returned it
        raise NotFound(f"subscription {sub_id} does not exist", field="id")
    session.refresh(row)
    return _sub_out(row)


@router.post("/{list_id}/subscriptions", status_code=201, summary="Subscribe a mailing contact")
def subscribe(
    list_id: Id, _user: Writer, session: WriteSession, now: Now, body: SubscribeIn
) -> SubscriptionOut:
    sub_id = mailing_lists.subscribe(
        session=session, contact_id=body.contact_id, list_id=list_id, now=now
    )
    return _subscription(session, sub_id)


@router.post(
    "/{list_id}/subscriptions/{contact_id}/opt-out", summary="Opt a contact out of the list"
)
def opt_out(
    list_id: Id, contact_id: Id, _user: Writer, session: WriteSession, now: Now
) -> SubscriptionOut:
    sub_id = mailing_lists.opt_out(session=session, contact_id=contact_id, list_id=list_id, now=now)
    return _subscription(session, sub_id)


@router.post(
    "/{list_id}/subscriptions/{contact_id}/resubscribe",
    summary="Subscribe again after an opt-out",
)
def resubscribe(
    list_id: Id, contact_id: Id, _user: Writer, session: WriteSession, now: Now
) -> SubscriptionOut:
    sub_id = mailing_lists.resubscribe(session=session, contact_id=contact_id, list_id=list_id, now=now)
    return _subscription(session, sub_id)
