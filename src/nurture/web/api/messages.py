"""The outbox and the link tracker (read-only, SPEC §6, §9).

* ``/api/v1/messages`` — the email messages composed for traces (one per trace), with
  their delivery state; ``/api/v1/messages/{id}/source`` downloads the wire source
  (``message/rfc822``), which with the ``outbox`` transport is the outbox itself.
* ``/api/v1/sms-messages`` — the SMS messages (one per trace): text as sent, E.164 number,
  state, provider and provider id, delivery receipt.
* ``/api/v1/link-tracker`` — clicks per tracked URL and campaign, aggregated over the
  tracked links and their click hits (machine hits counted apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, defer

from nurture.channels.email.models import MESSAGE_STATES, MailMessage
from nurture.channels.sms.models import SMS_STATES, SmsMessage
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
from nurture.web.security.auth import CurrentUser, require

messages_router = APIRouter(
    prefix="/messages", tags=["messages"], responses={**AUTH_ERRORS, **NOT_FOUND}
)
sms_router = APIRouter(
    prefix="/sms-messages", tags=["messages"], responses={**AUTH_ERRORS, **NOT_FOUND}
)
links_router = APIRouter(prefix="/link-tracker", tags=["link tracker"], responses=AUTH_ERRORS)
Reader = Annotated[CurrentUser, Depends(require("campaigns.read"))]
ReportReader = Annotated[CurrentUser, Depends(require("reports.read"))]
FilterId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


class OutboxRow(BaseModel):
    """The fields every outbox message starts with (one message per trace)."""

    id: int
    trace_id: int
    campaign_id: int
    activity_id: int
    is_test: bool


class MessageOut(OutboxRow):
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


StateFilter = Annotated[
    str | None, Query(max_length=16, json_schema_extra=enum_of(MESSAGE_STATES))
]


@dataclass(frozen=True)
class OutboxQuery:
    """The query parameters both outboxes (email and SMS) take: filters and paging."""

    campaign_id: int | None
    activity_id: int | None
    state: str | None
    is_test: bool | None
    limit: int
    cursor: str | None
    offset: int | None

    def page(self, session: Session, stmt: Select[Any], orm: type[MailMessage] | type[SmsMessage]) -> tuple[list[Any], str | None]:
        """The rows of ``stmt`` (``orm`` rows) that match, one page by id."""
        if self.campaign_id is not None:
            stmt = stmt.where(orm.campaign_id == self.campaign_id)
        if self.activity_id is not None:
            stmt = stmt.where(orm.activity_id == self.activity_id)
        if self.state is not None:
            if self.state not in MESSAGE_STATES:
                raise ValidationError(
                    f"unknown state {self.state!r} (known: {', '.join(MESSAGE_STATES)})",
                    field="state",
                )
            stmt = stmt.where(orm.state == self.state)
        if self.is_test is not None:
            stmt = stmt.where(orm.is_test.is_(self.is_test))
        rows, next_cursor = paginate(
            session, stmt, orm.id, limit=self.limit, cursor=self.cursor, offset=self.offset
        )
        return list(rows), next_cursor


def outbox_query(
    limit: Limit = 50,
    cursor: Cursor = None,
    offset: Offset = None,
    campaign_id: FilterId = None,
    activity_id: FilterId = None,
    state: StateFilter = None,
    is_test: bool | None = None,
) -> OutboxQuery:
    return OutboxQuery(campaign_id, activity_id, state, is_test, limit, cursor, offset)


Outbox = Annotated[OutboxQuery, Depends(outbox_query)]


@messages_router.get("", summary="List email messages (the outbox)")
def list_messages(_user: Reader, session: ReadSession, query: Outbox) -> Page[MessageOut]:
    stmt = select(MailMessage).options(defer(MailMessage.raw, raiseload=True))
    rows, next_cursor = query.page(session, stmt, MailMessage)
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


# --------------------------------------------------------------------------- SMS outbox


class SmsMessageOut(OutboxRow):
    transactional: bool = Field(description="Sent by a server action, not a marketing step.")
    to_number: str = Field(description="The recipient, E.164.")
    body: str = Field(description="The text as sent (links shortened, opt-out text appended).")
    segments: int
    encoding: str = Field(description="gsm7 or ucs2.")
    state: str = Field(json_schema_extra=enum_of(SMS_STATES))
    provider: str | None = Field(description="outbox or http.")
    provider_id: str | None = Field(description="The provider's message id (Twilio: SM…).")
    attempts: int
    next_attempt_at: Timestamp | None
    failure_reason: str | None
    created_at: Timestamp
    sent_at: Timestamp | None
    delivered_at: Timestamp | None = Field(description="The provider reported it delivered.")
    updated_at: Timestamp


def _sms_out(m: SmsMessage) -> SmsMessageOut:
    return SmsMessageOut(**{name: getattr(m, name) for name in SmsMessageOut.model_fields})


@sms_router.get("", summary="List SMS messages (the SMS outbox)")
def list_sms_messages(_user: Reader, session: ReadSession, query: Outbox) -> Page[SmsMessageOut]:
    rows, next_cursor = query.page(session, select(SmsMessage), SmsMessage)
    return Page[SmsMessageOut](items=[_sms_out(m) for m in rows], next_cursor=next_cursor)


@sms_router.get("/{message_id}", summary="Get an SMS message")
def get_sms_message(message_id: Id, _user: Reader, session: ReadSession) -> SmsMessageOut:
    return _sms_out(one_or_404(session.get(SmsMessage, message_id), "SMS message", message_id))


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
