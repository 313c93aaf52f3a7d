"""The email template of an email activity:
``/api/v1/campaigns/{campaign_id}/activities/{activity_id}/email-template`` (SPEC §6).

Storage, save-time validation and rendering are the email channel's
(:mod:`nurture.channels.email.service`); a template error is a 422 whose message gives
the field, line and column.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from nurture.channels.email import service as email
from nurture.channels.email.models import EmailTemplate
from nurture.web.api.activities import campaign_activity
from nurture.web.api.common import (
    AUTH_ERRORS,
    CONFLICT,
    MAX_ID,
    NOT_FOUND,
    Id,
    Now,
    ReadSession,
    Timestamp,
    WriteSession,
)
from nurture.web.api.templates import PreviewRecord, activity_template, rendered
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(
    prefix="/campaigns/{campaign_id}/activities/{activity_id}/email-template",
    tags=["email templates"],
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
Reader = Annotated[CurrentUser, Depends(require("templates.read"))]
Writer = Annotated[CurrentUser, Depends(require("templates.write"))]


class EmailTemplateOut(BaseModel):
    id: int
    campaign_id: int | None
    activity_id: int | None
    name: str
    model: str
    subject: str
    preview: str
    from_addr: str | None
    reply_to: str | None
    body_html: str
    mailing_list_id: int | None = Field(description="Target list (opt-out and unsubscribe).")
    created_at: Timestamp
    updated_at: Timestamp


class EmailTemplatePut(BaseModel):
    """The whole template (PUT replaces it); validated before it is saved."""

    subject: str = Field(min_length=1, max_length=500)
    body_html: str = Field(default="", max_length=1_000_000)
    name: str | None = Field(
        default=None, max_length=200, description="Default: the activity's name."
    )
    preview: str = Field(default="", max_length=500, description="Preheader text.")
    from_addr: str | None = Field(default=None, max_length=320)
    reply_to: str | None = Field(default=None, max_length=320)
    mailing_list_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class RenderedOut(BaseModel):
    subject: str
    preview: str
    html: str = Field(description="The full document, CSS inlined.")
    text: str = Field(description="The plain-text part.")


def template_out(t: EmailTemplate) -> EmailTemplateOut:
    return EmailTemplateOut(
        id=t.id,
        campaign_id=t.campaign_id,
        activity_id=t.activity_id,
        name=t.name,
        model=t.model,
        subject=t.subject,
        preview=t.preview or "",
        from_addr=t.from_addr,
        reply_to=t.reply_to,
        body_html=t.body_html or "",
        mailing_list_id=t.mailing_list_id,
        created_at=t.created_at,
        updated_at=t.updated_at,
    )


def _template(session: Session, campaign_id: int, activity_id: int) -> EmailTemplate:
    return activity_template(
        session, campaign_id, activity_id, lookup=email.template_for_activity, channel="email"
    )


@router.get("", summary="Get the email template of an email activity")
def get_email_template(
    campaign_id: Id, activity_id: Id, _user: Reader, session: ReadSession
) -> EmailTemplateOut:
    return template_out(_template(session, campaign_id, activity_id))


@router.put(
    "",
    summary="Create or replace the email template of an email activity",
    responses=CONFLICT,
)
def put_email_template(
    campaign_id: Id,
    activity_id: Id,
    _user: Writer,
    session: WriteSession,
    now: Now,
    body: EmailTemplatePut,
) -> EmailTemplateOut:
    campaign_activity(session, campaign_id, activity_id)
    template = email.set_activity_template(
        session=session,
        now=now,
        activity_id=activity_id,
        subject=body.subject,
        body_html=body.body_html,
        name=body.name,
        preview=body.preview,
        from_addr=body.from_addr,
        reply_to=body.reply_to,
        mailing_list_id=body.mailing_list_id,
    )
    return template_out(template)


@router.delete("", status_code=204, summary="Delete the email template of an email activity")
def delete_email_template(
    campaign_id: Id, activity_id: Id, _user: Writer, session: WriteSession
) -> Response:
    template = _template(session, campaign_id, activity_id)
    email.delete_template(session=session, template_id=template.id)
    return Response(status_code=204)


@router.get("/preview", summary="Render the email template for a record")
def preview_email_template(
    campaign_id: Id,
    activity_id: Id,
    _user: Reader,
    session: ReadSession,
    record_id: PreviewRecord = None,
) -> RenderedOut:
    template = _template(session, campaign_id, activity_id)
    out = rendered(
        lambda: email.preview_template(session=session, template_id=template.id, record_id=record_id),
        "body_html",
    )
    return RenderedOut(
        subject=out.subject, preview=out.preview, html=out.html, text=out.text
    )
