"""Recipient checks against the phone blacklist, on both back ends."""

from __future__ import annotations

from datetime import datetime

import pytest

from nurture.channels.sms.recipients import SmsNotSent, sms_recipient
from nurture.db import Database
from nurture.records import blacklists
from nurture.records import service as records
from nurture.records.catalog import REGISTRY
from nurture.records.models import Contact

T0 = datetime(2026, 1, 5, 9)


def test_blacklisted_invalid_and_missing_numbers(db: Database) -> None:
    model = REGISTRY.get("contact")
    with db.transaction() as s:
        ok = records.create_record(session=s, model="contact", values={"name": "A", "mobile": "06 12 34 56 78", "country_code": "FR"}, now=T0)
        blocked = records.create_record(session=s, model="contact", values={"name": "B", "phone": "+447400123456"}, now=T0)
        bad = records.create_record(session=s, model="contact", values={"name": "C", "phone": "12", "country_code": "FR"}, now=T0)
        none = records.create_record(session=s, model="contact", values={"name": "D"}, now=T0)
        blacklists.blacklist_phone(session=s, number="07400 123456", country_code="GB", now=T0)
        objs = {i: s.get(Contact, i) for i in (ok, blocked, bad, none)}
        assert sms_recipient(s, model, objs[ok]) == "+33612345678"
        for rid, reason in ((blocked, "blacklisted"), (bad, "invalid number"), (none, "no phone number")):
            with pytest.raises(SmsNotSent, match=reason):
                sms_recipient(s, model, objs[rid])
