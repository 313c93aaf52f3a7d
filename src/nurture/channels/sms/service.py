"""SMS channel services: settings, template CRUD, the ``sms`` executor, message queueing.

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
rows (one per campaign and URL, shared with email) and replaced by a signed short link
``<base>/t/s/<token>`` (kind ``sclick``: link id, trace id) served by
:mod:`nurture.tracking.sms_routes`; a click there is the ``sms_click`` event.

Settings: ``NURTURE_SMS_OPT_OUT_TEXT`` (default "Reply STOP to opt out"), appended when the
template's ``opt_out`` flag is on; the provider settings of :mod:`.providers`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from nurture.campaigns.campaigns import on_activity_duplicated
from nurture.campaigns.models import Activity, Campaign
from nurture.channels.email.service import LinkStore
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
from nurture.config import Settings, load_settings
from nurture.engine.executors import ExecutionBatch, Outcome
from nurture.engine.models import Trace
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records import models as rm
from nurture.records import service as records
from nurture.records.catalog import REGISTRY
from nurture.templating import TemplateRenderError
from nurture.tracking.tokens import TokenSigner

KIND_SMS_CLICK = "sclick"  # SMS short link: ids = (link id, trace id)
KIND_SMS_STATUS = "sstatus"  # delivery-status callback URL: ids = (trace id,)
SMS_CLICK_PREFIX = "/t/s/"
SMS_STATUS_PREFIX = "/t/sms/status/"

# failure types (Odoo's names)
FAILURE_MISSING = "sms_number_missing"
FAILURE_FORMAT = "sms_number_format"
FAILURE_BLACKLISTED = "sms_blacklist"
FAILURE_SERVER = "sms_server"
FAILURE_UNKNOWN = "sms_unknown"

MSG_NO_TEMPLATE = "No SMS template for this activity"
MSG_BLACKLISTED = "blacklisted"
DEFAULT_OPT_OUT_TEXT = "Reply STOP to opt out"

# --------------------------------------------------------------------------- settings


@dataclass
class SmsContext:
    """What the channel needs from the process settings."""

    settings: Settings
    signer: TokenSigner
    base_url: str
    opt_out_text: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsContext:
        extra = settings.extra
        return cls(
            settings=settings,
            signer=TokenSigner.from_settings(settings),
            base_url=settings.base_url.rstrip("/"),
            opt_out_text=extra.get("NURTURE_SMS_OPT_OUT_TEXT", "").strip() or DEFAULT_OPT_OUT_TEXT,
        )

    def click_url(self, link_id: int, trace_id: int) -> str:
        return f"{self.base_url}{SMS_CLICK_PREFIX}{self.signer.sign(KIND_SMS_CLICK, link_id, trace_id)}"

    def status_callback_url(self, trace_id: int) -> str:
        return f"{self.base_url}{SMS_STATUS_PREFIX}{self.signer.sign(KIND_SMS_STATUS, trace_id)}"


_context: SmsContext | None = None
_context_lock = threading.Lock()


def configure(settings: Settings) -> SmsContext:
    """Use ``settings`` for the SMS channel of this process (servers, CLI, tests)."""
    global _context
    with _context_lock:
        _context = SmsContext.from_settings(settings)
    from nurture.channels.sms import delivery

    delivery.reset_provider()
    return _context


def sms_context() -> SmsContext:
    """The configured context, or one from the environment's settings on first use."""
    global _context
    with _context_lock:
        if _context is None:
            _context = SmsContext.from_settings(load_settings())
        return _context


def reset() -> None:
    """Forget the configured context and provider (tests)."""
    global _context
    with _context_lock:
        _context = None
    from nurture.channels.sms import delivery

    delivery.reset_provider()


# --------------------------------------------------------------------------- templates

_TEMPLATE_FIELDS = ("name", "body", "opt_out")


def _validate(template: SmsTemplate) -> SegmentInfo:
    if not isinstance(template.body, str):
        raise ValidationError("body takes text", field="body")
    return validate_sms_template(template.model, template.body)


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
    campaign_id: int | None = None
    if activity_id is not None:
        activity = session.get(Activity, activity_id)
        if activity is None:
            raise NotFound(f"no activity with id {activity_id}", field="activity_id")
        if activity.activity_type != "sms":
            raise ValidationError("only SMS activities have an SMS template", field="activity_id")
        if session.scalar(select(SmsTemplate.id).where(SmsTemplate.activity_id == activity_id)):
            raise Conflict("this activity already has an SMS template", field="activity_id")
        campaign = session.get(Campaign, activity.campaign_id)
        assert campaign is not None
        campaign_id, model = campaign.id, campaign.model
        name = name or activity.name
    if model is None:
        raise ValidationError("a target model is required for a standalone template", field="model")
    REGISTRY.target(model)
    template = SmsTemplate(
        name=(name or body or "SMS")[:200],
        model=model,
        campaign_id=campaign_id,
        activity_id=activity_id,
        body=body,
        opt_out=bool(opt_out),
        created_at=now,
        updated_at=now,
    )
    _validate(template)
    session.add(template)
    session.flush()
    return template


def get_template(*, session: Session, template_id: int) -> SmsTemplate:
    template = session.get(SmsTemplate, template_id)
    if template is None:
        raise NotFound(f"no SMS template with id {template_id}", field="template_id")
    return template


def template_for_activity(*, session: Session, activity_id: int) -> SmsTemplate | None:
    return session.scalar(select(SmsTemplate).where(SmsTemplate.activity_id == activity_id))


def update_template(*, session: Session, now: datetime, template_id: int, **changes: Any) -> SmsTemplate:
    template = get_template(session=session, template_id=template_id)
    unknown = set(changes) - set(_TEMPLATE_FIELDS)
    if unknown:
        raise ValidationError(f"unknown template field(s): {sorted(unknown)}", field=sorted(unknown)[0])
    for key, value in changes.items():
        if key == "opt_out":
            value = bool(value)
        elif value is None:
            value = ""
        setattr(template, key, value)
    _validate(template)
    template.updated_at = now
    session.flush()
    return template


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
    Validated before anything is written (:func:`create_template`, :func:`update_template`).
    """
    if campaign_id is not None:
        activity = session.get(Activity, activity_id)
        if activity is None or activity.campaign_id != campaign_id:
            raise NotFound(
                f"activity {activity_id} does not exist in campaign {campaign_id}",
                field="activity_id",
            )
    existing = template_for_activity(session=session, activity_id=activity_id)
    if existing is None:
        return create_template(
            session=session, now=now, activity_id=activity_id, body=body, name=name, opt_out=opt_out
        )
    activity = session.get(Activity, activity_id)
    assert activity is not None
    return update_template(
        session=session,
        now=now,
        template_id=existing.id,
        name=(name or activity.name)[:200],
        body=body,
        opt_out=opt_out,
    )


def delete_template(*, session: Session, template_id: int) -> None:
    session.delete(get_template(session=session, template_id=template_id))
    session.flush()


def _copy_template(session: Session, original: Activity, copy: Activity, now: datetime) -> None:
    """Campaign duplication: the copied SMS activity gets a copy of its template."""
    template = template_for_activity(session=session, activity_id=original.id)
    if template is None:
        return
    session.add(
        SmsTemplate(
            name=template.name,
            model=template.model,
            campaign_id=copy.campaign_id,
            activity_id=copy.id,
            body=template.body,
            opt_out=template.opt_out,
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()


on_activity_duplicated(_copy_template)


def preview_template(*, session: Session, template_id: int, record_id: int | None = None) -> RenderedSms:
    """Render the template with any record of its model (or none: defaults show)."""
    template = get_template(session=session, template_id=template_id)
    record = None
    if record_id is not None:
        record = records.get_record(session=session, model=template.model, record_id=record_id)
    ctx = sms_context()
    return _compiled(template).render(record, opt_out_text=ctx.opt_out_text if template.opt_out else None)


_compiled_cache: dict[tuple[int, str, datetime, str], CompiledSms] = {}
_compiled_lock = threading.Lock()


def _compiled(template: SmsTemplate) -> CompiledSms:
    """Compile once per template version (kept across batches)."""
    key = (template.id, template.model, template.updated_at, template.body)
    with _compiled_lock:
        found = _compiled_cache.get(key)
    if found is not None:
        return found
    compiled = compile_sms(template.model, template.body)
    with _compiled_lock:
        if len(_compiled_cache) > 64:
            _compiled_cache.clear()
        _compiled_cache[key] = compiled
    return compiled


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


def _chunks(values: list[Any], size: int = 900) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def blacklisted_numbers(session: Session, numbers: Iterable[str]) -> set[str]:
    """The subset of the E.164 ``numbers`` on the (active) phone blacklist; one query per 900."""
    keys = sorted({n for n in numbers if n})
    found: set[str] = set()
    bl = rm.PhoneBlacklist
    for part in _chunks(keys):
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


def send_sms(batch: ExecutionBatch) -> dict[int, Outcome]:
    """The ``sms`` executor: checks, renders and queues one message per trace."""
    session = batch.session
    traces = batch.traces
    if not traces:
        return {}
    template = template_for_activity(session=session, activity_id=batch.activity.id)
    if template is None:
        return {t.id: Outcome("error", MSG_NO_TEMPLATE) for t in traces}
    ctx = sms_context()
    compiled = _compiled(template)
    mdef = REGISTRY.target(batch.campaign.model)
    orm = mdef.orm
    loaded = {r.id: r for r in session.scalars(select(orm).where(orm.id.in_(batch.record_ids)))}

    outcomes: dict[int, Outcome] = {}
    failure: dict[int, str] = {}
    numbers: dict[int, str] = {}
    for t in traces:
        record = loaded.get(t.res_id)
        if record is None:
            outcomes[t.id] = Outcome("error", f"{mdef.label} {t.res_id} no longer exists")
            continue
        try:
            numbers[t.id] = recipient_number(mdef, record)
        except InvalidNumber as exc:
            outcomes[t.id] = Outcome("canceled", str(exc))
            failure[t.id] = FAILURE_MISSING if str(exc) == "no phone number" else FAILURE_FORMAT
    blacklisted = blacklisted_numbers(session, numbers.values())
    store = LinkStore(session, batch.campaign.id, batch.now)
    opt_out = ctx.opt_out_text if template.opt_out else None
    rows: list[dict[str, Any]] = []
    for t in traces:
        if t.id in outcomes:
            continue
        number = numbers[t.id]
        if number in blacklisted:
            outcomes[t.id] = Outcome("canceled", MSG_BLACKLISTED)
            failure[t.id] = FAILURE_BLACKLISTED
            continue
        try:
            rendered = compiled.render(
                loaded[t.res_id], shorten=_shortener(ctx, store, t.id), opt_out_text=opt_out
            )
        except (TemplateRenderError, ValueError) as exc:
            outcomes[t.id] = Outcome("error", f"Cannot render the SMS: {exc}"[:1000])
            continue
        if not rendered.body:
            outcomes[t.id] = Outcome("canceled", "empty message")
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
    if rows:
        session.execute(insert(SmsMessage), rows)
    by_type: dict[str, list[int]] = {}
    for trace_id, failure_type in failure.items():
        by_type.setdefault(failure_type, []).append(trace_id)
    for failure_type, ids in by_type.items():
        for part in _chunks(ids):
            session.execute(
                update(Trace)
                .where(Trace.id.in_(part))
                .values(failure_reason=failure_type)
                .execution_options(synchronize_session=False)
            )
    return outcomes

