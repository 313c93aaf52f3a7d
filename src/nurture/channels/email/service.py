"""Email channel services: settings, template CRUD and preview, the ``email`` executor,
unsubscribes.

**The executor** (registered for the ``email`` activity type) works per batch of due traces
in the engine's batch transaction and never talks to the network: it checks what must not
be sent set-based (one query per check for the whole batch), composes each remaining
message (the template is compiled once per batch) and inserts one :class:`MailMessage` row
``queued`` per trace (``UNIQUE(trace_id)``). The traces become ``processed`` with the batch,
their children are created by the engine. Delivery happens after the commit
(:mod:`.delivery`), so a rolled-back batch never sent anything.

**Not sent** (trace ``canceled`` with the reason, ``failure_reason`` = Odoo's failure type),
checked in this order:

1. missing address (``mail_email_missing``) or invalid address (``mail_email_invalid``);
2. blacklisted address (``mail_bl``);
3. opted out of the target list (``mail_optout``) — the rule: the *target list* is the
   template's optional ``mailing_list_id``.

   * target model ``mailing_contact``: with a target list, the contact's subscription to it
     is opted out; without one, the contact has subscriptions and every one is opted out;
   * other target models with a target list: a mailing contact with the same address has
     opted out of that list;
   * other target models without a target list: no list to opt out of (unsubscribing from
     such a mailing blacklists the address, as Odoo does, so rule 2 covers it);
4. same address already mailed by this activity (``mail_dup``): a non-test message of the
   activity to the same normalised address, or an earlier trace of the same batch. Test
   participants never count in de-duplication.

**Unsubscribe** (:func:`unsubscribe`): opts the address out of the target list (the
mailing contact's own lists when the target is a mailing contact and the template has no
list; a mailing contact is created for other targets when none has the address); without
any list, or when asked ("exclude me from all marketing"), blacklists the address. Each
unsubscribe is recorded with its optional reason (:class:`MailUnsubscribe`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture import templating as tpl_mod
from nurture.campaigns.models import Campaign
from nurture.channels.activity_templates import ActivityTemplates, CompiledCache, TemplateRules
from nurture.channels.batch import MessageBatch, chunks, message_executor
from nurture.channels.email.compose import (
    FAILURE_EMAIL_INVALID,
    FAILURE_EMAIL_MISSING,
    Unsendable,
    check_address,
    compose_email,
)
from nurture.channels.email.context import email_context
from nurture.channels.email.links import Utm
from nurture.channels.email.mime import parse_address
from nurture.channels.email.models import EmailTemplate, MailMessage, MailUnsubscribe
from nurture.channels.links import LinkStore
from nurture.config import Settings
from nurture.engine.models import Trace
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records import blacklists, mailing_lists
from nurture.records import models as rm
from nurture.records import service as records
from nurture.templating import (
    PREVIEW_BUDGET,
    CompiledTemplate,
    RenderedEmail,
    TemplateRenderError,
    compile_template,
    render_budget,
    validate_template,
)

log = logging.getLogger(__name__)

FAILURE_BLACKLISTED = "mail_bl"
FAILURE_OPTOUT = "mail_optout"
FAILURE_DUPLICATE = "mail_dup"

MSG_MISSING = "Not sent: missing email address"
MSG_INVALID = "Not sent: invalid email address"
MSG_BLACKLISTED = "Not sent: blacklisted address"
MSG_OPTOUT = "Not sent: opted out of the mailing list"
MSG_DUPLICATE = "Not sent: address already mailed by this activity"
MSG_NO_TEMPLATE = "No email template for this activity"

# --------------------------------------------------------------------------- templates

_CONTENT = ("subject", "preview", "from_addr", "reply_to", "body_html", "mailing_list_id")


def _check_address_field(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        parse_address(value.strip())
    except ValueError as exc:
        raise ValidationError(f"{name}: {exc}", field=name) from None
    return value.strip()


def _check_subject_unique(
    session: Session, campaign_id: int | None, subject: str, template_id: int | None
) -> None:
    if campaign_id is None:
        return
    stmt = select(EmailTemplate.id).where(
        EmailTemplate.campaign_id == campaign_id, EmailTemplate.subject == subject
    )
    if template_id is not None:
        stmt = stmt.where(EmailTemplate.id != template_id)
    if session.scalar(stmt) is not None:
        raise Conflict("another email of this campaign has the same subject", field="subject")


def _validate(session: Session, t: EmailTemplate) -> None:
    validate_template(t.model, t.subject, t.body_html, t.preview or "")
    t.from_addr = _check_address_field(t.from_addr, "from_addr")
    t.reply_to = _check_address_field(t.reply_to, "reply_to")
    if t.mailing_list_id is not None and session.get(rm.MailingList, t.mailing_list_id) is None:
        raise NotFound(f"no mailing list with id {t.mailing_list_id}", field="mailing_list_id")
    _check_subject_unique(session, t.campaign_id, t.subject, t.id)


def _coerce(key: str, value: Any) -> Any:
    return value if value is not None or key not in ("subject", "body_html") else ""


TEMPLATES = ActivityTemplates(
    TemplateRules(EmailTemplate, "email", "email", _CONTENT, validate=_validate, coerce=_coerce)
)
#: the template of an activity, or None
template_for_activity = TEMPLATES.for_activity


def create_template(
    *,
    session: Session,
    now: datetime,
    subject: str,
    body_html: str,
    activity_id: int | None = None,
    model: str | None = None,
    name: str | None = None,
    preview: str = "",
    from_addr: str | None = None,
    reply_to: str | None = None,
    mailing_list_id: int | None = None,
) -> EmailTemplate:
    """A template for an email activity (``activity_id``) or standalone (``model``).

    Validated at save time: a template error raises
    :class:`~.templates.TemplateValidationError` with line and column.
    """
    return TEMPLATES.create(
        session=session, now=now, activity_id=activity_id, model=model, name=name, default_name=subject,
        subject=subject, preview=preview or "", from_addr=from_addr, reply_to=reply_to,
        body_html=body_html, mailing_list_id=mailing_list_id,
    )


def set_activity_template(
    *,
    session: Session,
    now: datetime,
    activity_id: int,
    subject: str,
    body_html: str,
    name: str | None = None,
    preview: str = "",
    from_addr: str | None = None,
    reply_to: str | None = None,
    mailing_list_id: int | None = None,
) -> EmailTemplate:
    """Create or replace the template of the email activity ``activity_id`` (API PUT, UI).

    Validated before anything is written (:func:`create_template`, :meth:`ActivityTemplates.update`).
    """
    return TEMPLATES.set_for_activity(
        session=session, now=now, activity_id=activity_id, name=name, create=create_template,
        subject=subject, body_html=body_html, preview=preview, from_addr=from_addr,
        reply_to=reply_to, mailing_list_id=mailing_list_id,
    )


def preview_template(
    *, session: Session, template_id: int, record_id: int | None = None
) -> RenderedEmail:
    """Render the template with any record of its model (or none: defaults show)."""
    template = TEMPLATES.get(session=session, template_id=template_id)
    record = TEMPLATES.preview_record(session=session, template=template, record_id=record_id)
    compiled = _compiled(template)
    with render_budget(PREVIEW_BUDGET):
        return compiled.render(
            record, context={"unsubscribe_url": "#unsubscribe", "view_url": "#view"}
        )


def _compile(template: EmailTemplate) -> CompiledTemplate:
    return compile_template(
        template.model, tpl_mod.EmailTemplate(template.subject, template.body_html, template.preview or "")
    )


def _source(template: EmailTemplate) -> str:
    return "\x00".join((template.subject, template.preview or "", template.body_html))


_compiled = CompiledCache(_compile, _source)


# --------------------------------------------------------------------------- not-sent checks


def _opted_out(
    session: Session,
    *,
    model: str,
    list_id: int | None,
    record_ids: list[int],
    emails: list[str],
) -> tuple[set[int], set[str]]:
    """(opted-out record ids, opted-out addresses) under the module's rule."""
    sub = rm.MailingSubscription
    ids: set[int] = set()
    addresses: set[str] = set()
    if model == "mailing_contact":
        for part in chunks(record_ids):
            if list_id is not None:
                ids.update(
                    session.scalars(
                        select(sub.contact_id).where(
                            sub.list_id == list_id, sub.opted_out.is_(True), sub.contact_id.in_(part)
                        )
                    )
                )
            else:
                out = set(
                    session.scalars(
                        select(sub.contact_id).where(sub.opted_out.is_(True), sub.contact_id.in_(part))
                    )
                )
                still_in = set(
                    session.scalars(
                        select(sub.contact_id).where(sub.opted_out.is_(False), sub.contact_id.in_(part))
                    )
                )
                ids.update(out - still_in)
    elif list_id is not None:
        mc = rm.MailingContact
        for part in chunks(emails):
            addresses.update(
                e.lower()
                for e in session.scalars(
                    select(mc.email)
                    .join(sub, sub.contact_id == mc.id)
                    .where(sub.list_id == list_id, sub.opted_out.is_(True), func.lower(mc.email).in_(part))
                )
                if e
            )
    return ids, addresses


def _already_mailed(session: Session, activity_id: int, emails: list[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(emails):
        found.update(
            session.scalars(
                select(MailMessage.email).where(
                    MailMessage.activity_id == activity_id,
                    MailMessage.is_test.is_(False),
                    MailMessage.state != "canceled",
                    MailMessage.email.in_(part),
                )
            )
        )
    return found


# --------------------------------------------------------------------------- executor


def _queue_email(work: MessageBatch[EmailTemplate]) -> list[dict[str, Any]]:
    """Checks and composes the batch's messages: the ``mail_message`` rows to queue."""
    batch, template, mdef, loaded = work.batch, work.template, work.mdef, work.loaded
    session, traces, outcomes, refuse = batch.session, batch.traces, work.outcomes, work.refuse
    ctx = email_context()
    compiled = _compiled(template)
    email_field = mdef.email_field

    # 1. addresses
    addresses: dict[int, tuple[str, str]] = {}  # trace id -> (as written, normalised)
    for t in traces:
        record = loaded.get(t.res_id)
        value = getattr(record, email_field, None) if (record is not None and email_field) else None
        try:
            addresses[t.id] = check_address(None if value is None else str(value))
        except Unsendable as exc:
            if exc.failure_type == FAILURE_EMAIL_MISSING:
                refuse(t.id, MSG_MISSING, FAILURE_EMAIL_MISSING)
            else:
                refuse(t.id, MSG_INVALID, FAILURE_EMAIL_INVALID)
    normalised = sorted({a[1] for a in addresses.values()})

    # 2. blacklist, 3. opt-out, 4. duplicates: one query each for the batch
    blacklisted = blacklists.blacklisted_emails(session=session, emails=normalised)
    out_ids, out_addresses = _opted_out(
        session,
        model=mdef.name,
        list_id=template.mailing_list_id,
        record_ids=[t.res_id for t in traces if t.id in addresses],
        emails=normalised,
    )
    mailed = _already_mailed(session, batch.activity.id, normalised)
    for t in traces:
        if t.id not in addresses:
            continue
        address = addresses[t.id][1]
        if address in blacklisted:
            refuse(t.id, MSG_BLACKLISTED, FAILURE_BLACKLISTED)
        elif t.res_id in out_ids or address in out_addresses:
            refuse(t.id, MSG_OPTOUT, FAILURE_OPTOUT)
        elif not t.is_test and address in mailed:
            refuse(t.id, MSG_DUPLICATE, FAILURE_DUPLICATE)
        elif not t.is_test:
            mailed.add(address)  # later traces of this batch to the same address

    # compose and queue
    identity = ctx.identity(template)
    store = LinkStore(session, batch.campaign.id, batch.now)
    utm = Utm(campaign=batch.campaign.name, medium="email", source=batch.activity.name)
    rows: list[dict[str, Any]] = []
    for t in traces:
        if t.id in outcomes:
            continue
        written = addresses[t.id][0]
        try:
            composed = compose_email(
                compiled,
                loaded[t.res_id],
                to_addr=written,
                trace_id=t.id,
                signer=ctx.signer,
                identity=identity,
                store_link=store,
                utm=utm,
                date=batch.now,
            )
        except Unsendable as exc:
            refuse(t.id, MSG_INVALID, exc.failure_type)
            continue
        except (TemplateRenderError, ValueError) as exc:
            work.error(t.id, f"Cannot compose the email: {exc}")
            continue
        out = composed.outgoing
        rows.append(
            {
                "trace_id": t.id,
                "campaign_id": batch.campaign.id,
                "activity_id": batch.activity.id,
                "is_test": t.is_test,
                "email": composed.to_addr,
                "recipient": out.recipients[0],
                "envelope_from": out.envelope_from,
                "message_id": _message_id(out.raw),
                "subject": composed.rendered.subject[:500],
                "state": "queued",
                "attempts": 0,
                "next_attempt_at": batch.now,
                "raw": out.raw,
                "created_at": batch.now,
                "updated_at": batch.now,
            }
        )
    return rows


def _message_id(raw: bytes) -> str:
    """The Message-ID header value from the wire bytes (headers come first)."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line[:11].lower() == b"message-id:":
            return line[11:].strip().decode("ascii", "replace")
    return ""


#: the ``email`` executor: checks, composes and queues one message per trace
send_email = message_executor(TEMPLATES, MailMessage, MSG_NO_TEMPLATE, _queue_email)


# --------------------------------------------------------------------------- unsubscribe


@dataclass(frozen=True)
class UnsubscribeTarget:
    trace_id: int
    email: str
    campaign: Campaign
    template: EmailTemplate | None
    res_id: int


def unsubscribe_target(session: Session, trace_id: int) -> UnsubscribeTarget | None:
    """The message a valid unsubscribe token names, or None (nothing to unsubscribe)."""
    row = session.execute(
        select(MailMessage.email, Trace.res_id, Trace.activity_id, Trace.campaign_id)
        .join(Trace, Trace.id == MailMessage.trace_id)
        .where(MailMessage.trace_id == trace_id)
    ).first()
    if row is None:
        return None
    email, res_id, activity_id, campaign_id = row
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    template = template_for_activity(session=session, activity_id=activity_id)
    return UnsubscribeTarget(trace_id, email, campaign, template, res_id)


def unsubscribe(
    session: Session,
    *,
    trace_id: int,
    now: datetime,
    reason: str | None = None,
    blacklist: bool = False,
    one_click: bool = False,
) -> bool:
    """Unsubscribe the recipient of trace ``trace_id`` (module docstring); False if unknown."""
    target = unsubscribe_target(session, trace_id)
    if target is None:
        return False
    reason = (reason or "").strip()[:200] or None
    list_id = target.template.mailing_list_id if target.template is not None else None
    did_blacklist = blacklist
    if target.campaign.model == "mailing_contact":
        if list_id is not None:
            lists = [list_id]
        else:
            lists = list(
                session.scalars(
                    select(rm.MailingSubscription.list_id).where(
                        rm.MailingSubscription.contact_id == target.res_id
                    )
                )
            )
        if session.get(rm.MailingContact, target.res_id) is None:
            lists = []
        for lid in lists:
            mailing_lists.opt_out(session=session, contact_id=target.res_id, list_id=lid, now=now)
        if not lists:
            did_blacklist = True
    elif list_id is not None:
        contacts = list(
            session.scalars(
                select(rm.MailingContact.id).where(func.lower(rm.MailingContact.email) == target.email)
            )
        )
        if not contacts:
            contacts = [
                records.create_record(
                    session=session,
                    model="mailing_contact",
                    values={"name": target.email, "email": target.email},
                    now=now,
                )
            ]
        for contact_id in contacts:
            mailing_lists.opt_out(session=session, contact_id=contact_id, list_id=list_id, now=now)
    else:
        did_blacklist = True
    if did_blacklist:
        blacklists.blacklist_email(
            session=session,
            email=target.email,
            now=now,
            reason=(f"Unsubscribed: {reason}" if reason else "Unsubscribed")[:200],
            source="unsubscribe",
        )
    session.add(
        MailUnsubscribe(
            trace_id=trace_id,
            email=target.email,
            mailing_list_id=list_id,
            reason=reason,
            blacklisted=did_blacklist,
            one_click=one_click,
            at=now,
        )
    )
    session.flush()
    return True


def unsubscribe_reasons(settings: Settings | None = None) -> list[str]:
    """The reasons offered on the unsubscribe page (``NURTURE_UNSUBSCRIBE_REASONS``, ``|``-separated)."""
    extra: Mapping[str, str] = settings.extra if settings is not None else email_context().settings.extra
    raw = extra.get("NURTURE_UNSUBSCRIBE_REASONS", "").strip()
    if raw:
        return [r.strip() for r in raw.split("|") if r.strip()]
    return [
        "I no longer want to receive these emails",
        "I never signed up for this mailing list",
        "The emails are inappropriate",
        "The emails are too frequent",
        "Other",
    ]
