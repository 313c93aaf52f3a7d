"""Send a transactional email or SMS to the record (``transactional``).

Payload::

    {"channel": "email", "subject": "Your order {{ record.name }}", "html": "<p>…</p>",
     "from_addr": "Shop <shop@example.com>", "reply_to": null}
    {"channel": "sms", "body": "Your code is ready, {{ record.name }}"}

Templates use the channels' sandbox and are validated at save time against the model
registry (the email template validator for ``subject``/``html``, the SMS validator for
``body``; problems are reported on those fields).

**Who gets it.** A transactional message is not marketing: it **ignores** marketing opt-outs —
mailing-list opt-outs, the phone blacklist and email blacklist entries made by unsubscribes
or by hand — but **not hard bounces**. The rule (one query per check for the batch):

* email — skipped (trace ``canceled`` "Not sent: address hard-bounced") when the normalised
  address is on the email blacklist *because of bounces* (the auto-blacklist reason of
  :mod:`nurture.channels.email.receive`), or an earlier message to that address hard-bounced
  (its trace's failure type ``mail_bounce_hard``) or was refused at send time (``failed``
  with a known failure type);
* SMS — skipped ("Not sent: number bounced") when an earlier SMS to that E.164 number
  ``failed`` (refused by the provider, or reported ``failed``/``undelivered``), except
  interrupted sends whose fate is unknown;
* a missing or invalid address/number is skipped too ("no email address", "invalid number"…).

**How it is sent.** Like a campaign step, through the channel's message table in the batch
transaction (:class:`~nurture.channels.email.models.MailMessage` /
:class:`~nurture.channels.sms.models.SmsMessage`, keyed by the action's trace), delivered after
commit by the channel's delivery (exactly once). The email carries no tracking pixel, no
tracked links, no unsubscribe link or ``List-Unsubscribe`` header and is not marked bulk;
the SMS gets no opt-out text and its links are left as written. Delivery failures fail the
message and the trace (``error``); they raise no ``*_bounce`` event (an action step has no
message events). One transactional message per trace: a ``multi`` action sending twice
fails the second with "already sent a message for this step".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from nurture import templating as email_templates
from nurture.actions.base import (
    ActionFailed,
    ActionSkipped,
    check_keys,
    payload_of,
    register_kind,
    run_per_record,
    text_value,
)
from nurture.campaigns.models import ServerAction
from nurture.channels.email.bounces import AUTO_BLACKLIST_REASON
from nurture.channels.email.compose import SenderIdentity, Unsendable, check_address
from nurture.channels.email.context import email_context
from nurture.channels.email.mime import MessageSpec, build_message, parse_address
from nurture.channels.email.models import MailMessage
from nurture.channels.queue import MSG_UNKNOWN
from nurture.channels.sms import service as sms_service
from nurture.channels.sms.models import SmsMessage
from nurture.channels.sms.render import (
    InvalidNumber,
    compile_sms,
    recipient_number,
    validate_sms_template,
)
from nurture.engine.executors import DueTrace, ExecutionBatch, Outcome
from nurture.engine.models import Trace
from nurture.errors import ValidationError
from nurture.records import models as rm
from nurture.records.catalog import REGISTRY
from nurture.tracking.tokens import message_token

CHANNELS = ("email", "sms")
MSG_EMAIL_BOUNCED = "Not sent: address hard-bounced"
MSG_SMS_BOUNCED = "Not sent: number bounced"
MSG_ALREADY = "already sent a message for this step"


# --------------------------------------------------------------------------- validation


def validate_payload(model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    mdef = REGISTRY.target(model)
    channel = payload.get("channel")
    if channel not in CHANNELS:
        raise ValidationError(f"channel is one of {', '.join(CHANNELS)}", field="channel")
    if channel == "email":
        check_keys(payload, {"channel", "subject", "html", "from_addr", "reply_to"})
        if not mdef.email_field:
            raise ValidationError(f"{mdef.label} records have no email address", field="channel")
        subject = payload.get("subject")
        html = payload.get("html", "")
        if not isinstance(subject, str) or not subject.strip():
            raise ValidationError("subject is required", field="subject")
        if not isinstance(html, str):
            raise ValidationError("html takes text", field="html")
        email_templates.validate_template(mdef, subject, html)
        cleaned: dict[str, Any] = {"channel": "email", "subject": subject, "html": html}
        for key in ("from_addr", "reply_to"):
            value = text_value(payload, key, max_length=320)
            if value is not None:
                try:
                    parse_address(value)
                except ValueError as exc:
                    raise ValidationError(f"{key}: {exc}", field=key) from None
            cleaned[key] = value
        return cleaned
    check_keys(payload, {"channel", "body"})
    if not mdef.phone_fields:
        raise ValidationError(f"{mdef.label} records have no phone number", field="channel")
    body = payload.get("body")
    if not isinstance(body, str):
        raise ValidationError("body is required", field="body")
    validate_sms_template(mdef, body)
    return {"channel": "sms", "body": body}


# --------------------------------------------------------------------------- hard bounces


def _chunks(values: list[str], size: int = 900) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def hard_bounced_emails(session: Any, emails: list[str]) -> set[str]:
    """The normalised addresses of ``emails`` that hard-bounced (module rule)."""
    found: set[str] = set()
    bl = rm.EmailBlacklist
    for part in _chunks(sorted(set(emails))):
        found.update(
            session.scalars(
                select(bl.email).where(
                    bl.email.in_(part), bl.active.is_(True), bl.reason == AUTO_BLACKLIST_REASON
                )
            )
        )
        found.update(
            session.scalars(
                select(MailMessage.email)
                .join(Trace, Trace.id == MailMessage.trace_id)
                .where(MailMessage.email.in_(part), Trace.failure_reason == "mail_bounce_hard")
            )
        )
        found.update(
            session.scalars(
                select(MailMessage.email).where(
                    MailMessage.email.in_(part),
                    MailMessage.state == "failed",
                    MailMessage.failure_type.is_not(None),
                    MailMessage.failure_type != "mail_unknown",
                )
            )
        )
    return {e.lower() for e in found}


def bounced_numbers(session: Any, numbers: list[str]) -> set[str]:
    """The E.164 ``numbers`` an earlier SMS failed to (module rule)."""
    found: set[str] = set()
    for part in _chunks(sorted(set(numbers))):
        found.update(
            session.scalars(
                select(SmsMessage.to_number).where(
                    SmsMessage.to_number.in_(part),
                    SmsMessage.state == "failed",
                    func.coalesce(SmsMessage.failure_reason, "") != MSG_UNKNOWN,
                )
            )
        )
    return found


# --------------------------------------------------------------------------- running


def _run_email(batch: ExecutionBatch, action: ServerAction, payload: dict[str, Any]) -> dict[int, Outcome]:
    session = batch.session
    mdef = REGISTRY.get(action.model)
    email_field = mdef.email_field
    ctx = email_context()
    compiled = email_templates.compile_template(
        mdef, email_templates.EmailTemplate(str(payload["subject"]), str(payload.get("html") or ""))
    )
    identity = SenderIdentity.from_settings(
        ctx.settings,
        from_addr=payload.get("from_addr") or ctx.default_from,
        reply_to=payload.get("reply_to") or None,
    )
    orm = mdef.orm
    values = {
        r.id: getattr(r, email_field, None) if email_field else None
        for r in session.scalars(select(orm).where(orm.id.in_(batch.record_ids)))
    }
    normalised: list[str] = []
    for value in values.values():
        try:
            normalised.append(check_address(None if value is None else str(value))[1])
        except Unsendable:
            continue
    bounced = hard_bounced_emails(session, normalised)

    def step(record: Any, trace: DueTrace) -> None:
        value = getattr(record, email_field, None) if email_field else None
        try:
            written, address = check_address(None if value is None else str(value))
        except Unsendable as exc:
            raise ActionSkipped(f"Not sent: {exc}") from None
        if address in bounced:
            raise ActionSkipped(MSG_EMAIL_BOUNCED)
        try:
            rendered = compiled.render(record)
        except (email_templates.TemplateRenderError, ValueError) as exc:
            raise ActionFailed(f"Cannot compose the email: {exc}") from None
        token = message_token(ctx.signer, trace.id)
        out = build_message(
            MessageSpec(
                from_addr=identity.from_addr,
                to_addr=written,
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
                token=token,
                domain=identity.mail_domain,
                reply_to=identity.reply_to,
                unsubscribe=None,
                bulk=False,
                date=batch.now,
                bounce_local=identity.bounce_local,
            )
        )
        _insert(
            session,
            MailMessage,
            {
                "trace_id": trace.id,
                "campaign_id": batch.campaign.id,
                "activity_id": batch.activity.id,
                "is_test": trace.is_test,
                "email": address,
                "recipient": out.recipients[0],
                "envelope_from": out.envelope_from,
                "message_id": f"<{token}@{identity.mail_domain}>",
                "subject": rendered.subject[:500],
                "state": "queued",
                "attempts": 0,
                "next_attempt_at": batch.now,
                "raw": out.raw,
                "created_at": batch.now,
                "updated_at": batch.now,
            },
        )

    return run_per_record(batch, action, step)


def _run_sms(batch: ExecutionBatch, action: ServerAction, payload: dict[str, Any]) -> dict[int, Outcome]:
    session = batch.session
    mdef = REGISTRY.get(action.model)
    compiled = compile_sms(mdef, str(payload.get("body") or ""))
    orm = mdef.orm
    numbers: list[str] = []
    for record in session.scalars(select(orm).where(orm.id.in_(batch.record_ids))):
        try:
            numbers.append(recipient_number(mdef, record))
        except InvalidNumber:
            continue
    bounced = bounced_numbers(session, numbers)

    def step(record: Any, trace: DueTrace) -> None:
        try:
            number = recipient_number(mdef, record)
        except InvalidNumber as exc:
            raise ActionSkipped(f"Not sent: {exc}") from None
        if number in bounced:
            raise ActionSkipped(MSG_SMS_BOUNCED)
        try:
            rendered = compiled.render(record)
        except (email_templates.TemplateRenderError, ValueError) as exc:
            raise ActionFailed(f"Cannot render the SMS: {exc}") from None
        if not rendered.body:
            raise ActionSkipped("Not sent: empty message")
        row = sms_service.message_row(
            trace_id=trace.id,
            campaign_id=batch.campaign.id,
            activity_id=batch.activity.id,
            is_test=trace.is_test,
            to_number=number,
            rendered=rendered,
            now=batch.now,
            transactional=True,
        )
        _insert(session, SmsMessage, row)

    return run_per_record(batch, action, step)


def _insert(session: Any, table: Any, row: dict[str, Any]) -> None:
    try:
        with session.begin_nested():
            session.execute(insert(table), [row])
    except IntegrityError:
        raise ActionFailed(MSG_ALREADY) from None


def transactional(batch: ExecutionBatch, action: ServerAction) -> dict[int, Outcome]:
    payload = payload_of(action)
    if payload.get("channel") == "sms":
        return _run_sms(batch, action, payload)
    if payload.get("channel") == "email":
        return _run_email(batch, action, payload)
    return {t.id: Outcome("error", "the action's channel is not email or sms") for t in batch.traces}


register_kind(
    "transactional",
    label="Send a transactional email / SMS",
    validate=validate_payload,
    run=transactional,
)
