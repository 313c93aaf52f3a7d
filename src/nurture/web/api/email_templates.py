"""The email template of an email activity:
``/api/v1/campaigns/{campaign_id}/activities/{activity_id}/email-template`` (SPEC §6).

Storage, save-time validation and rendering are the email channel's
(:mod:`nurture.channels.email.service`); a template error is a 422 whose message gives
the field, line and column. The routes are :func:`~.activity_templates.template_router`'s.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from nurture.channels.email import service as email
from nurture.channels.email.models import EmailTemplate
from nurture.web.api.activity_templates import TemplateApi, template_router
from nurture.web.api.common import CONFLICT, MAX_ID, Timestamp


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


def _put(session: Session, now: datetime, activity_id: int, body: EmailTemplatePut) -> EmailTemplate:
    return email.set_activity_template(
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


def _preview(session: Session, template_id: int, record_id: int | None) -> RenderedOut:
    out = email.preview_template(session=session, template_id=template_id, record_id=record_id)
    return RenderedOut(subject=out.subject, preview=out.preview, html=out.html, text=out.text)


router = template_router(
    TemplateApi(
        slug="email", label="email", templates=email.TEMPLATES,
        out=template_out, out_model=EmailTemplateOut, put_model=EmailTemplatePut, put=_put,
        preview=_preview, preview_model=RenderedOut, preview_field="body_html",
        put_responses=CONFLICT,
    )
)
