"""SMS channel services: template CRUD, the ``sms`` executor, message queueing.

**The executor** (registered for the ``sms`` activity type) works per batch of due traces in
the engine's batch transaction and never talks to the network, like the email executor: it
reads the batch's records once, checks what must not be sent (the phone blacklist in one
query for the batch), renders each remaining message (the template is compiled once per
batch) and inserts one :class:`SmsMessage` row ``queued`` per trace (``UNIQUE(trace_id)``).
Delivery happens after the commit (:mod:`.delivery`), so a rolled-back batch sent nothing.

**Not sent** (trace ``canceled`` with the reason, in this order):

1. ``no phone number`` — every phone field of the record is empty;
2. ``invalid number`` — the numbers present do not parse to E.164 with the record's country
   (mobile first, :func:`~nurture.channels.sms.render.recipient_number`);
3. ``blacklisted`` — the E.164 number is on the phone blacklist.

Links in the rendered text are stored as :class:`~nurture.channels.email.models.TrackedLink`
rows (one per campaign and URL, shared with email, :class:`~nurture.channels.links.LinkStore`)
and replaced by a signed short link ``<base>/t/s/<token>`` (kind ``sclick``: link id, trace
id) served by :mod:`nurture.web.tracking`; a click there is the ``sms_click`` event
(:mod:`.tracking`).

Settings: ``NURTURE_SMS_OPT_OUT_TEXT`` (default "Reply STOP to opt out"), appended when the
template's ``opt_out`` flag is on; the provider settings of :mod:`.providers`; the channel's per-process context is
:data:`.delivery.SMS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity
from nurture.channels.activity_templates import ActivityTemplates, CompiledCache, TemplateRules
from nurture.channels.batch import MessageBatch, chunks, message_executor
from nurture.channels.links import LinkStore
from nurture.channels.sms.context import SmsContext, sms_context
from nurture.channels.sms.models import SmsMessage, SmsTemplate
from nurture.channels.sms.render import (
    CompiledSms,
    InvalidNumber,
    RenderedSms,
    compile_sms,
    recipient_number,
    validate_sms_template,
)
from nurture.channels.sms.segments import SegmentInfo
from nurture.errors import NotFound, ValidationError
from nurture.records import models as rm
from nurture.templating import TemplateRenderError

# failure types (Odoo's names)
FAILURE_MISSING = "sms_number_missing"
FAILURE_FORMAT = "sms_number_format"
FAILURE_BLACKLISTED = "sms_blacklist"

MSG_NO_TEMPLATE = "No SMS template for this activity"
MSG_BLACKLISTED = "blacklisted"

# --------------------------------------------------------------------------- templates


def _validate(session: Session, template: SmsTemplate) -> SegmentInfo:
    if not isinstance(template.body, str):
        raise ValidationError("body takes text", field="body")
    return validate_sms_template(template.model, template.body)


def _coerce(key: str, value: Any) -> Any:
    if key == "opt_out":
        return bool(value)
    return "" if value is None else value


TEMPLATES = ActivityTemplates(
    TemplateRules(SmsTemplate, "sms", "SMS", ("body", "opt_out"), validate=_validate, coerce=_coerce)
)
#: the template of an activity, or None
template_for_activity = TEMPLATES.for_activity


def create_template(
    *,
    session: Session,
    now: datetime,
    body: str,
    activity_id: int | None = None,
    model: str | None = None,
    name: str | None = None,
    opt_out: bool = False,
) -> SmsTemplate:
    """A template for an SMS activity (``activity_id``) or standalone (``model``).

    Validated at save time (:func:`~.render.validate_sms_template`): a template error raises
    :class:`~nurture.templating.TemplateValidationError` on ``body``.
    """
    return TEMPLATES.create(
        session=session, now=now, activity_id=activity_id, model=model, name=name,
        default_name=body or "SMS", body=body, opt_out=bool(opt_out),
    )


def set_activity_template(
    *,
    session: Session,
    now: datetime,
    activity_id: int,
    body: str,
    name: str | None = None,
    opt_out: bool = False,
    campaign_id: int | None = None,
) -> SmsTemplate:
    """Create or replace the template of the SMS activity ``activity_id`` (API PUT, CLI).

    With ``campaign_id``, the activity must belong to that campaign (:class:`NotFound`).
    Validated before anything is written (:func:`create_template`, :meth:`ActivityTemplates.update`).
    """
    if campaign_id is not None:
        activity = session.get(Activity, activity_id)
        if activity is None or activity.campaign_id != campaign_id:
            raise NotFound(
                f"activity {activity_id} does not exist in campaign {campaign_id}",
                field="activity_id",
            )
    return TEMPLATES.set_for_activity(
        session=session, now=now, activity_id=activity_id, name=name, create=create_template,
        body=body, opt_out=opt_out,
    )


def preview_template(*, session: Session, template_id: int, record_id: int | None = None) -> RenderedSms:
    """Render the template with any record of its model (or none: defaults show)."""
    template = TEMPLATES.get(session=session, template_id=template_id)
    record = TEMPLATES.preview_record(session=session, template=template, record_id=record_id)
    ctx = sms_context()
    return _compiled(template).render(record, opt_out_text=ctx.opt_out_text if template.opt_out else None)


def _compile(template: SmsTemplate) -> CompiledSms:
    return compile_sms(template.model, template.body)


def _source(template: SmsTemplate) -> str:
    return template.body


_compiled = CompiledCache(_compile, _source)


def delivered_counts(*, session: Session, campaign_id: int) -> dict[int, int]:
    """Per SMS activity of the campaign: real (not test) messages reported delivered."""
    rows = session.execute(
        select(SmsMessage.activity_id, func.count())
        .where(
            SmsMessage.campaign_id == campaign_id,
            SmsMessage.is_test.is_(False),
            SmsMessage.delivered_at.is_not(None),
        )
        .group_by(SmsMessage.activity_id)
    )
    return {int(activity_id): int(n) for activity_id, n in rows}


# --------------------------------------------------------------------------- checks


def blacklisted_numbers(session: Session, numbers: Iterable[str]) -> set[str]:
    """The subset of the E.164 ``numbers`` on the (active) phone blacklist; one query per 900."""
    keys = sorted({n for n in numbers if n})
    found: set[str] = set()
    bl = rm.PhoneBlacklist
    for part in chunks(keys):
        found.update(
            session.scalars(select(bl.number).where(bl.number.in_(part), bl.active.is_(True)))
        )
    return found


# --------------------------------------------------------------------------- executor


def message_row(
    *,
    trace_id: int,
    campaign_id: int,
    activity_id: int,
    is_test: bool,
    to_number: str,
    rendered: RenderedSms,
    now: datetime,
    transactional: bool = False,
) -> dict[str, Any]:
    """The values of one ``queued`` :class:`SmsMessage` row."""
    return {
        "trace_id": trace_id,
        "campaign_id": campaign_id,
        "activity_id": activity_id,
        "is_test": is_test,
        "transactional": transactional,
        "to_number": to_number,
        "body": rendered.body,
        "segments": rendered.segments.segments,
        "encoding": rendered.segments.encoding,
        "state": "queued",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _shortener(ctx: SmsContext, store: Callable[[str], int], trace_id: int) -> Callable[[str], str]:
    """``shorten(url)`` for one message: store the URL, return its signed short link."""

    def shorten(url: str) -> str:
        return ctx.click_url(store(url), trace_id)

    return shorten


def _queue_sms(work: MessageBatch[SmsTemplate]) -> list[dict[str, Any]]:
    """Checks and renders the batch's messages: the ``sms_message`` rows to queue."""
    batch, template, mdef, loaded = work.batch, work.template, work.mdef, work.loaded
    ctx = sms_context()
    compiled = _compiled(template)
    numbers: dict[int, str] = {}
    for t in batch.traces:
        record = loaded.get(t.res_id)
        if record is None:
            work.error(t.id, f"{mdef.label} {t.res_id} no longer exists")
            continue
        try:
            numbers[t.id] = recipient_number(mdef, record)
        except InvalidNumber as exc:
            work.refuse(t.id, str(exc), FAILURE_MISSING if str(exc) == "no phone number" else FAILURE_FORMAT)
    blacklisted = blacklisted_numbers(batch.session, numbers.values())
    store = LinkStore(batch.session, batch.campaign.id, batch.now)
    opt_out = ctx.opt_out_text if template.opt_out else None
    rows: list[dict[str, Any]] = []
    for t in batch.traces:
        if t.id in work.outcomes:
            continue
        number = numbers[t.id]
        if number in blacklisted:
            work.refuse(t.id, MSG_BLACKLISTED, FAILURE_BLACKLISTED)
            continue
        try:
            rendered = compiled.render(
                loaded[t.res_id], shorten=_shortener(ctx, store, t.id), opt_out_text=opt_out
            )
        except (TemplateRenderError, ValueError) as exc:
            work.error(t.id, f"Cannot render the SMS: {exc}")
            continue
        if not rendered.body:
            work.refuse(t.id, "empty message")
            continue
        rows.append(
            message_row(
                trace_id=t.id,
                campaign_id=batch.campaign.id,
                activity_id=batch.activity.id,
                is_test=t.is_test,
                to_number=number,
                rendered=rendered,
                now=batch.now,
            )
        )
    return rows


#: the ``sms`` executor: checks, renders and queues one message per trace
send_sms = message_executor(TEMPLATES, SmsMessage, MSG_NO_TEMPLATE, _queue_sms)
