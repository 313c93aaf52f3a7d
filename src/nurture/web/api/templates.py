"""Template checks and previews: ``/api/v1/templates/email/…``, ``/api/v1/templates/sms/…``.

Stateless: nothing is stored here. An activity's template is stored by
``/api/v1/campaigns/{id}/activities/{id}/email-template`` and ``…/sms-template``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from nurture import templating as email_templates
from nurture.channels.sms import render as sms_render
from nurture.channels.sms import segments as sms_segments
from nurture.errors import ValidationError
from nurture.records import service as records
from nurture.records.catalog import REGISTRY
from nurture.web.api.common import AUTH_ERRORS, MAX_ID, NOT_FOUND, ReadSession, enum_of
from nurture.web.security.auth import CurrentUser, require

router = APIRouter(prefix="/templates", tags=["templates"], responses={**AUTH_ERRORS, **NOT_FOUND})
Reader = Annotated[CurrentUser, Depends(require("templates.read"))]
TARGETS = [m.name for m in REGISTRY.targets()]


class EmailTemplateIn(BaseModel):
    model: str = Field(json_schema_extra=enum_of(TARGETS), description="Target model.")
    subject: str = Field(max_length=1000)
    html: str = Field(max_length=1_000_000)
    preview: str = Field(default="", max_length=1000)


class PreviewIn(EmailTemplateIn):
    record_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Render for this record (default: none)."
    )


class Problem(BaseModel):
    field: str
    line: int
    column: int
    message: str


class CheckOut(BaseModel):
    valid: bool
    problems: list[Problem]


class PreviewOut(BaseModel):
    subject: str
    preview: str
    html: str
    text: str


def _target(model: str) -> str:
    if model not in TARGETS:
        raise ValidationError(
            f"unknown target model {model!r} (targets: {', '.join(TARGETS)})", field="model"
        )
    return model


@router.post("/email/check", summary="Check an email template (line and column of problems)")
def check_email(_user: Reader, body: EmailTemplateIn) -> CheckOut:
    try:
        email_templates.validate_template(_target(body.model), body.subject, body.html, body.preview)
    except email_templates.TemplateValidationError as exc:
        return CheckOut(
            valid=False,
            problems=[
                Problem(field=p.field, line=p.line, column=p.column, message=p.message)
                for p in exc.problems
            ],
        )
    return CheckOut(valid=True, problems=[])


@router.post("/email/preview", summary="Render an email template for a record")
def preview_email(_user: Reader, session: ReadSession, body: PreviewIn) -> PreviewOut:
    model = _target(body.model)
    record = None
    if body.record_id is not None:
        record = records.get_record(session=session, model=model, record_id=body.record_id)
    try:
        rendered = email_templates.render_preview(
            model,
            email_templates.EmailTemplate(subject=body.subject, html=body.html, preview=body.preview),
            record,
        )
    except email_templates.TemplateRenderError as exc:
        raise ValidationError(exc.message, field=exc.field or "html") from None
    return PreviewOut(
        subject=rendered.subject, preview=rendered.preview, html=rendered.html, text=rendered.text
    )


# --------------------------------------------------------------------------- SMS


class SmsTemplateIn(BaseModel):
    model: str = Field(json_schema_extra=enum_of(TARGETS), description="Target model.")
    body: str = Field(max_length=5000)


class SmsPreviewIn(SmsTemplateIn):
    record_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Render for this record (default: none)."
    )
    opt_out_text: str | None = Field(default=None, max_length=200)


class Segments(BaseModel):
    encoding: str = Field(description="gsm7 or ucs2.")
    length: int = Field(description="Septets (GSM-7) or UTF-16 code units (UCS-2).")
    segments: int = Field(description="Number of SMS parts.")
    remaining: int = Field(description="Room left in the last part.")
    per_segment: int = Field(description="Capacity of one part (160/153 or 70/67).")


class SmsCheckOut(BaseModel):
    valid: bool
    problems: list[Problem]
    segments: Segments = Field(description="Of the template's source text.")


class SmsPreviewOut(BaseModel):
    body: str
    segments: Segments


def segments_out(info: sms_segments.SegmentInfo) -> Segments:
    return Segments(
        encoding=info.encoding,
        length=info.length,
        segments=info.segments,
        remaining=info.remaining,
        per_segment=info.per_segment,
    )


@router.post("/sms/check", summary="Check an SMS template and count its segments")
def check_sms(_user: Reader, body: SmsTemplateIn) -> SmsCheckOut:
    model = _target(body.model)
    segments = segments_out(sms_segments.count_segments(body.body))
    try:
        sms_render.validate_sms_template(model, body.body)
    except email_templates.TemplateValidationError as exc:
        problems = [
            Problem(field=p.field, line=p.line, column=p.column, message=p.message)
            for p in exc.problems
        ]
        return SmsCheckOut(valid=False, problems=problems, segments=segments)
    return SmsCheckOut(valid=True, problems=[], segments=segments)


@router.post("/sms/preview", summary="Render an SMS template for a record")
def preview_sms(_user: Reader, session: ReadSession, body: SmsPreviewIn) -> SmsPreviewOut:
    model = _target(body.model)
    record = None
    if body.record_id is not None:
        record = records.get_record(session=session, model=model, record_id=body.record_id)
    try:
        with email_templates.render_budget(email_templates.PREVIEW_BUDGET):
            rendered = sms_render.compile_sms(model, body.body).render(
                record, opt_out_text=body.opt_out_text
            )
    except email_templates.TemplateRenderError as exc:
        raise ValidationError(exc.message, field=exc.field or "body") from None
    return SmsPreviewOut(body=rendered.body, segments=segments_out(rendered.segments))
