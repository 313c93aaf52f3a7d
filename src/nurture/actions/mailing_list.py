"""Add to / remove from a mailing list (``add_to_list``, ``remove_from_list``).

Payload: ``{"list": "Newsletter"}`` (a list name) or ``{"list": 3}`` (a list id);
``remove_from_list`` also takes ``"opt_out": true`` to keep the subscription marked as opted
out (an unsubscription on record) instead of deleting it.

Subscriptions belong to mailing contacts. On a ``mailing_contact`` campaign the record itself
is subscribed. On any other target model with an email field (contact, lead, event
registration) the mailing contact with the same (normalised) address is used, created from
the record (name, email, phone, company, country) when there is none; a record without an
address is skipped (trace ``canceled`` "no email address").

Adding never duplicates a subscription; an existing subscription is kept as it is, so a
contact who opted out of the list stays opted out (consent is not overridden by a
workflow). Adding to a list given by name creates the list when it does not exist; a list
given by id must exist. Removing from a list that does not exist, or a contact that is not
subscribed, changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select

from nurture.actions.base import (
    ActionFailed,
    ActionSkipped,
    check_keys,
    payload_of,
    register_kind,
    run_per_record,
)
from nurture.campaigns.models import ServerAction
from nurture.engine.executors import DueTrace, ExecutionBatch, Outcome
from nurture.errors import ValidationError
from nurture.records import mailing_lists
from nurture.records import models as m
from nurture.records import service as records
from nurture.records.catalog import REGISTRY
from nurture.records.events import records_changed
from nurture.records.validation import InvalidEmail, normalize_email

_COPIED = ("name", "email", "phone", "company_name", "country_code")


def _check_model(model: str, action: str) -> None:
    mdef = REGISTRY.target(model)
    if mdef.name != "mailing_contact" and not mdef.email_field:
        raise ValidationError(
            f"{action} works on mailing contacts or records with an email address; "
            f"{mdef.label} records have none",
            field="model",
        )


def _list_ref(payload: Mapping[str, Any]) -> int | str:
    ref = payload.get("list")
    if isinstance(ref, bool) or ref is None:
        raise ValidationError("list is required: a mailing list name or id", field="list")
    if isinstance(ref, int):
        if ref <= 0:
            raise ValidationError("list: a list id is a positive number", field="list")
        return ref
    if isinstance(ref, str) and ref.strip():
        if len(ref.strip()) > 200:
            raise ValidationError("list: the name is longer than 200 characters", field="list")
        return ref.strip()
    raise ValidationError("list takes a mailing list name or id", field="list")


def validate_add(model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(payload, {"list"})
    _check_model(model, "add to list")
    return {"list": _list_ref(payload)}


def validate_remove(model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(payload, {"list", "opt_out"})
    _check_model(model, "remove from list")
    opt_out = payload.get("opt_out", False)
    if not isinstance(opt_out, bool):
        raise ValidationError("opt_out takes true or false", field="opt_out")
    return {"list": _list_ref(payload), "opt_out": opt_out}


def _find_list(batch: ExecutionBatch, ref: int | str, *, create: bool) -> int | None:
    session = batch.session
    if isinstance(ref, int):
        if session.get(m.MailingList, ref) is None:
            if create:
                raise ActionFailed(f"mailing list {ref} does not exist")
            return None
        return ref
    found = session.scalar(select(m.MailingList.id).where(m.MailingList.name == ref))
    if found is not None:
        return int(found)
    if not create:
        return None
    return mailing_lists.get_or_create_mailing_list(session=session, name=ref, now=batch.now)


def _email_of(record: Any, model: str) -> str:
    field = REGISTRY.get(model).email_field
    value = getattr(record, field, None) if field else None
    if not value:
        raise ActionSkipped("no email address")
    try:
        return normalize_email(str(value))
    except InvalidEmail:
        raise ActionSkipped(f"invalid email address {value!r}") from None


def _mailing_contacts(batch: ExecutionBatch, record: Any, model: str, *, create: bool) -> list[int]:
    """The mailing contacts standing for ``record`` (created from it when ``create``)."""
    if model == "mailing_contact":
        return [int(record.id)]
    session = batch.session
    email = _email_of(record, model)
    found = list(
        session.scalars(
            select(m.MailingContact.id).where(m.MailingContact.email == email).order_by(m.MailingContact.id)
        )
    )
    if found or not create:
        return [int(i) for i in (found[:1] if create else found)]
    values: dict[str, Any] = {}
    for name in _COPIED:
        value = getattr(record, name, None)
        if value:
            values[name] = value
    values["email"] = email
    values.setdefault("name", email)
    new_id = records.create_record(session=session, model="mailing_contact", values=values, now=batch.now)
    return [new_id]


def add_to_list(batch: ExecutionBatch, action: ServerAction) -> dict[int, Outcome]:
    payload = payload_of(action)
    ref = payload.get("list")
    if not isinstance(ref, int | str) or isinstance(ref, bool):
        return {t.id: Outcome("error", "the action has no mailing list") for t in batch.traces}
    try:
        list_id = _find_list(batch, ref, create=True)
    except ActionFailed as exc:
        return {t.id: Outcome("error", exc.message) for t in batch.traces}
    assert list_id is not None

    def step(record: Any, trace: DueTrace) -> None:
        for contact_id in _mailing_contacts(batch, record, action.model, create=True):
            mailing_lists.subscribe(session=batch.session, contact_id=contact_id, list_id=list_id, now=batch.now)

    return run_per_record(batch, action, step)


def remove_from_list(batch: ExecutionBatch, action: ServerAction) -> dict[int, Outcome]:
    payload = payload_of(action)
    ref = payload.get("list")
    if not isinstance(ref, int | str) or isinstance(ref, bool):
        return {t.id: Outcome("error", "the action has no mailing list") for t in batch.traces}
    list_id = _find_list(batch, ref, create=False)
    if list_id is None:
        return {}
    opt_out = bool(payload.get("opt_out"))
    session = batch.session

    def step(record: Any, trace: DueTrace) -> None:
        contact_ids = _mailing_contacts(batch, record, action.model, create=False)
        for contact_id in contact_ids:
            if opt_out:
                if mailing_lists.is_opted_out(session=session, contact_id=contact_id, list_id=list_id):
                    continue
                subscribed = session.scalar(
                    select(m.MailingSubscription.id).where(
                        m.MailingSubscription.contact_id == contact_id,
                        m.MailingSubscription.list_id == list_id,
                    )
                )
                if subscribed is not None:
                    mailing_lists.opt_out(session=session, contact_id=contact_id, list_id=list_id, now=batch.now)
                continue
            result = session.execute(
                delete(m.MailingSubscription).where(
                    m.MailingSubscription.contact_id == contact_id,
                    m.MailingSubscription.list_id == list_id,
                )
            )
            if getattr(result, "rowcount", 0):
                records_changed(session, model="mailing_contact", ids=[contact_id], now=batch.now)

    return run_per_record(batch, action, step)


register_kind("add_to_list", label="Add to mailing list", validate=validate_add, run=add_to_list)
register_kind(
    "remove_from_list", label="Remove from mailing list", validate=validate_remove, run=remove_from_list
)
