"""The SMS template of an SMS activity:
``/api/v1/campaigns/{campaign_id}/activities/{activity_id}/sms-template`` (SPEC §6).

Storage, save-time validation and rendering are the SMS channel's
(:mod:`nurture.channels.sms.service`); a template error is a 422 ``invalid_template`` whose
message gives the field, line and column. Every answer carries the segment count and
encoding of the template's text (:class:`~nurture.web.api.templates.Segments`). The routes
are :func:`~.activity_templates.template_router`'s.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from nurture.channels.sms import service as sms
from nurture.channels.sms.models import SmsTemplate
from nurture.channels.sms.segments import count_segments
from nurture.web.api.activity_templates import TemplateApi, template_router
from nurture.web.api.common import Timestamp
from nurture.web.api.templates import Segments, SmsPreviewOut, segments_out


class SmsTemplateOut(BaseModel):
    id: int
    campaign_id: int | None
    activity_id: int | None
    name: str
    model: str
    body: str = Field(description="The text, with `{{ record.… }}` placeholders.")
    opt_out: bool = Field(description="The opt-out text (NURTURE_SMS_OPT_OUT_TEXT) is appended.")
    segments: Segments = Field(
        description="Of the template's source text (the rendered count depends on the record)."
    )
    created_at: Timestamp
    updated_at: Timestamp


class SmsTemplatePut(BaseModel):
    """The whole template (PUT replaces it); validated before it is saved."""

    body: str = Field(min_length=1, max_length=5000)
    name: str | None = Field(
        default=None, max_length=200, description="Default: the activity's name."
    )
    opt_out: bool = Field(default=False, description="Append the opt-out text to every message.")


def template_out(t: SmsTemplate) -> SmsTemplateOut:
    return SmsTemplateOut(
        id=t.id,
        campaign_id=t.campaign_id,
        activity_id=t.activity_id,
        name=t.name,
        model=t.model,
        body=t.body,
        opt_out=bool(t.opt_out),
        segments=segments_out(count_segments(t.body)),
        created_at=t.created_at,
        updated_at=t.updated_at,
    )


def _put(session: Session, now: datetime, activity_id: int, body: SmsTemplatePut) -> SmsTemplate:
    return sms.set_activity_template(
        session=session, now=now, activity_id=activity_id, body=body.body, name=body.name, opt_out=body.opt_out
    )


def _preview(session: Session, template_id: int, record_id: int | None) -> SmsPreviewOut:
    out = sms.preview_template(session=session, template_id=template_id, record_id=record_id)
    return SmsPreviewOut(body=out.body, segments=segments_out(out.segments))


router = template_router(
    TemplateApi(
        slug="sms", label="SMS", templates=sms.TEMPLATES,
        out=template_out, out_model=SmsTemplateOut, put_model=SmsTemplatePut, put=_put,
        preview=_preview, preview_model=SmsPreviewOut, preview_field="body",
    )
)
