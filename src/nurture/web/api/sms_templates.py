"""The SMS template of an SMS activity:
``/api/v1/campaigns/{campaign_id}/activities/{activity_id}/sms-template`` (SPEC §6).

Storage, save-time validation and rendering are the SMS channel's
(:mod:`nurture.channels.sms.service`); a template error is a 422 ``invalid_template`` whose
message gives the field, line and column. Every answer carries the segment count and
encoding of the template's text (:class:`~nurture.web.api.templates.Segments`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from nurture.channels.sms import service as sms
from nurture.channels.sms.models import SmsTemplate
from nurture.channels.sms.segments import count_segments
from nurture.web.api.activities import campaign_activity
from nurture.web.api.common import (
    AUTH_ERRORS,
    NOT_FOUND,
    Id,
    Now,
    ReadSession,
    Timestamp,
    WriteSession,
)
from nurture.web.api.templates import (
    PreviewRecord,
    Segments,
    SmsPreviewOut,
    activity_template,
    rendered,
    segments_out,
)
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(
    prefix="/campaigns/{campaign_id}/activities/{activity_id}/sms-template",
    tags=["sms templates"],
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
Reader = Annotated[CurrentUser, Depends(require("templates.read"))]
Writer = Annotated[CurrentUser, Depends(require("templates.write"))]


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


def _template(session: Session, campaign_id: int, activity_id: int) -> SmsTemplate:
    return activity_template(
        session, campaign_id, activity_id, lookup=sms.template_for_activity, channel="SMS"
    )


@router.get("", summary="Get the SMS template of an SMS activity")
def get_sms_template(
    campaign_id: Id, activity_id: Id, _user: Reader, session: ReadSession
) -> SmsTemplateOut:
    return template_out(_template(session, campaign_id, activity_id))


@router.put("", summary="Create or replace the SMS template of an SMS activity")
def put_sms_template(
    campaign_id: Id,
    activity_id: Id,
    _user: Writer,
    session: WriteSession,
    now: Now,
    body: SmsTemplatePut,
) -> SmsTemplateOut:
    campaign_activity(session, campaign_id, activity_id)
    template = sms.set_activity_template(
        session=session,
        now=now,
        activity_id=activity_id,
        body=body.body,
        name=body.name,
        opt_out=body.opt_out,
    )
    return template_out(template)


@router.delete("", status_code=204, summary="Delete the SMS template of an SMS activity")
def delete_sms_template(
    campaign_id: Id, activity_id: Id, _user: Writer, session: WriteSession
) -> Response:
    template = _template(session, campaign_id, activity_id)
    sms.delete_template(session=session, template_id=template.id)
    return Response(status_code=204)


@router.get("/preview", summary="Render the SMS template for a record")
def preview_sms_template(
    campaign_id: Id,
    activity_id: Id,
    _user: Reader,
    session: ReadSession,
    record_id: PreviewRecord = None,
) -> SmsPreviewOut:
    template = _template(session, campaign_id, activity_id)
    out = rendered(
        lambda: sms.preview_template(session=session, template_id=template.id, record_id=record_id),
        "body",
    )
    return SmsPreviewOut(body=out.body, segments=segments_out(out.segments))
