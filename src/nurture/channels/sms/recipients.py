"""Who an SMS goes to, and whether it may go at all (SPEC §7).

:func:`sms_recipient` is the check the SMS executor runs per record before rendering:
the record's number in E.164 (mobile first, the record's country as default region), or
:class:`SmsNotSent` whose message is the trace's ``canceled`` reason — "no phone number",
"invalid number" or "blacklisted" (the phone blacklist, SPEC §7).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from nurture.channels.sms.render import InvalidNumber, recipient_number
from nurture.records import blacklists
from nurture.records.registry import ModelDef

MSG_BLACKLISTED = "blacklisted"


class SmsNotSent(Exception):
    """This record gets no SMS; ``str()`` is the human reason for the trace."""


def sms_recipient(session: Session, model: ModelDef, record: Any) -> str:
    """The E.164 number to text, or :class:`SmsNotSent` with the reason."""
    try:
        number = recipient_number(model, record)
    except InvalidNumber as exc:
        raise SmsNotSent(str(exc)) from None
    if blacklists.is_phone_blacklisted(session=session, number=number):
        raise SmsNotSent(MSG_BLACKLISTED)
    return number
