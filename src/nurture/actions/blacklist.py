"""Blacklist the record's email address and/or phone numbers (``blacklist``).

Payload: ``{"what": "email" | "phone" | "both", "reason": "Bounced welcome email"}``
(``what`` defaults to ``email``; the reason defaults to "Blacklisted by campaign <name>").

Email addresses go to the email blacklist (normalised); every phone field of the record
(phone, mobile) goes to the phone blacklist in E.164 using the record's country. A record
with nothing to blacklist is skipped (trace ``canceled`` with the reason); an address the
blacklist refuses (not an email address) fails that record's trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nurture.actions.base import (
    ActionSkipped,
    check_keys,
    payload_of,
    register_kind,
    run_per_record,
    text_value,
)
from nurture.campaigns.models import ServerAction
from nurture.engine.executors import DueTrace, ExecutionBatch, Outcome
from nurture.errors import ValidationError
from nurture.records import blacklists
from nurture.records.catalog import REGISTRY

WHAT = ("email", "phone", "both")


def validate_payload(model: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(payload, {"what", "reason"})
    mdef = REGISTRY.target(model)
    what = payload.get("what", "email")
    if what not in WHAT:
        raise ValidationError(f"what is one of {', '.join(WHAT)}", field="what")
    if what == "email" and not mdef.email_field:
        raise ValidationError(f"{mdef.label} records have no email address", field="what")
    if what == "phone" and not mdef.phone_fields:
        raise ValidationError(f"{mdef.label} records have no phone number", field="what")
    if what == "both" and not (mdef.email_field or mdef.phone_fields):
        raise ValidationError(f"{mdef.label} records have no email or phone", field="what")
    reason = text_value(payload, "reason", max_length=200)
    return {"what": what, "reason": reason}


def blacklist(batch: ExecutionBatch, action: ServerAction) -> dict[int, Outcome]:
    payload = payload_of(action)
    mdef = REGISTRY.get(action.model)
    what = payload.get("what", "email")
    reason = payload.get("reason") or f"Blacklisted by campaign {batch.campaign.name}"[:200]
    do_email = what in ("email", "both") and mdef.email_field is not None
    do_phone = what in ("phone", "both")
    session = batch.session

    def step(record: Any, trace: DueTrace) -> None:
        done = False
        if do_email and mdef.email_field:
            email = getattr(record, mdef.email_field, None)
            if email:
                blacklists.blacklist_email(
                    session=session, email=str(email), now=batch.now, reason=reason, source="action"
                )
                done = True
        if do_phone:
            country = getattr(record, "country_code", None)
            for name in mdef.phone_fields:
                number = getattr(record, name, None)
                if number and str(number).strip():
                    blacklists.blacklist_phone(
                        session=session, number=str(number), now=batch.now, reason=reason,
                        country_code=country, source="action",
                    )
                    done = True
        if not done:
            wanted = {"email": "no email address", "phone": "no phone number"}.get(
                str(what), "no email address or phone number"
            )
            raise ActionSkipped(f"Nothing to blacklist: {wanted}")

    return run_per_record(batch, action, step)


register_kind("blacklist", label="Blacklist email / phone", validate=validate_payload, run=blacklist)
