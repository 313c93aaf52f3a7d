"""The outbox and the link tracker (read-only, SPEC §6, §9).

* ``/api/v1/messages`` — the email messages composed for traces (one per trace), with
  their delivery state; ``/api/v1/messages/{id}/source`` downloads the wire source
  (``message/rfc822``), which with the ``outbox`` transport is the outbox itself.
* ``/api/v1/link-tracker`` — clicks per tracked URL and campaign, aggregated over the
  tracked links and their click hits (machine hits counted apart).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from nurture.channels.email.models import MESSAGE_STATES, MailMessage
from nurture.errors import NotFound, ValidationError
from nurture.reporting import campaign_stats
from nurture.web.api.common import (
    AUTH_ERRORS,
    MAX_ID,
    NOT_FOUND,
    Cursor,
    Id,
    Limit,
    Offset,
    Page,
    ReadSession,
    Timestamp,
    decode_cursor,
    encode_cursor,
    enum_of,
    one_or_404,
    paginate,
)
from nurture.web.security import CurrentUser, require

messages_router = APIRouter(
    prefix="/messages", tags=["messages"], responses={**AUTH_ERRORS, **NOT_FOUND}
)
links_router = APIRouter(prefix="/link-tracker", tags=["link tracker"], responses=AUTH_ERRORS)
Reader = Annotated[CurrentUser, Depends(require("campaigns.read"))]
ReportReader = Annotated[CurrentUser, Depends(require("reports.read"))]
FilterId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


class MessageOut(BaseModel):
    id: int
    trace_id: int
    campaign_id: int
    activity_id: int
    is_test: bool
    email: str = Field(description="The recipient, normalised.")
    recipient: str = Field(description="The envelope recipient as written.")
    envelope_from: str
    message_id: str
    subject: str
    state: str = Field(json_schema_extra=enum_of(MESSAGE_STATES))
    attempts: int
    next_attempt_at: Timestamp | None
    failure_type: str | None
    failure_reason: str | None
    transport: str | None
    created_at: Timestamp
    sent_at: Timestamp | None
    updated_at: Timestamp


class MessageDetail(MessageOut):
    source_size: int | None = Field(
        description="Bytes of the wire source (null: not composed yet); see /source."
    )


def _fields(m: MailMessage) -> dict[str, Any]:
    return {name: getattr(m, name) for name in MessageOut.model_fields}


@messages_router.get("", summary="List email messages (the outbox)")
def list_messages(
    _user: Reader,
    session: ReadSession,
    campaign_id: FilterId = None,
    activity_id: FilterId = None,
    state: Annotated[
        str | None, Query(max_length=16, json_schema_extra=enum_of(MESSAGE_STATES))
    ] = None,
    is_test: bool | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
) -> Page[MessageOut]:
    stmt = select(MailMessage).options(defer(MailMessage.raw, raiseload=True))
    if campaign_id is not None:
        stmt = stmt.where(MailMessage.campaign_id == campaign_id)
    if activity_id is not None:
        stmt = stmt.where(MailMessage.activity_id == activity_id)
    if state is not None:
        if state not in MESSAGE_STATES:
            raise ValidationError(
                f"unknown state {state!r} (known: {', '.join(MESSAGE_STATES)})", field="state"
            )
        stmt = stmt.where(MailMessage.state == state)
    if is_test is not None:
        stmt = stmt.where(MailMessage.is_test.is_(is_test))
    rows, next_cursor = paginate(
        session, stmt, MailMessage.id, limit=limit, cursor=cursor, offset=offset
    )
    return Page[MessageOut](
        items=[MessageOut(**_fields(m)) for m in rows], next_cursor=next_cursor
    )


@messages_router.get("/{message_id}", summary="Get an email message")
def get_message(message_id: Id, _user: Reader, session: ReadSession) -> MessageDetail:
    message = one_or_404(
        session.scalar(
            select(MailMessage)
            .options(defer(MailMessage.raw, raiseload=True))
            .where(MailMessage.id == message_id)
        ),
        "message",
        message_id,
    )
    size = session.scalar(select(func.length(MailMessage.raw)).where(MailMessage.id == message_id))
    return MessageDetail(**_fields(message), source_size=size)


@messages_router.get(
    "/{message_id}/source",
    summary="Download the raw source of an email message",
    response_class=Response,
    responses={
        200: {
            "description": "The message as sent (RFC 5322).",
            "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def message_source(message_id: Id, _user: Reader, session: ReadSession) -> Response:
    row = session.execute(
        select(MailMessage.id, MailMessage.raw).where(MailMessage.id == message_id)
    ).first()
    if row is None:
        raise NotFound(f"message {message_id} does not exist", field="id")
    if row.raw is None:
        raise NotFound(f"message {message_id} has no source yet", field="id")
    return Response(
        content=bytes(row.raw),
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="message-{message_id}.eml"'},
    )


# --------------------------------------------------------------------------- link tracker


class LinkStats(BaseModel):
    id: int = Field(description="The tracked link.")
    campaign_id: int
    url: str = Field(description="The stored URL, UTM parameters included.")
    code: str
    clicks: int = Field(description="Clicks by people (machine hits excluded).")
    unique_clicks: int = Field(description="Distinct traces (recipients) that clicked.")
    machine_clicks: int = Field(description="Hits flagged as machines (scanners, previews).")
    last_click_at: Timestamp | None


@links_router.get("", summary="Clicks per tracked URL and campaign")
def link_tracker(
    _user: ReportReader,
    session: ReadSession,
    campaign_id: FilterId = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[LinkStats]:
    rows = campaign_stats.link_stats(
        session,
        campaign_id=campaign_id,
        after_id=decode_cursor(cursor) if cursor is not None else None,
        limit=limit + 1,
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    items = [LinkStats(**vars(r)) for r in rows]
    next_cursor = encode_cursor(int(rows[-1].id)) if has_more and rows else None
    return Page[LinkStats](items=items, next_cursor=next_cursor)
