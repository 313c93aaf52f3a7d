"""The built-in models, registered once (SPEC §1)."""

from __future__ import annotations

from nurture.records import models as m
from nurture.records.registry import Registry, model_from_orm

LEAD_STAGES = ("New", "Qualified", "Proposition", "Won", "Lost")
REGISTRATION_STATES = ("draft", "open", "done", "cancel")
USER_ROLES = ("admin", "marketer", "viewer")
CRM_ACTIVITY_TYPES = ("todo", "call", "meeting")

_PHONE = {"phone": "phone"}
_EMAIL = {"email": "email"}
_HIDE_VALIDITY = ("phone_valid", "mobile_valid")


def build_registry() -> Registry:
    registry = Registry()
    registry.register(
        model_from_orm(
            "user",
            m.User,
            label="User",
            relations={},
            hidden=("password_hash",),
            selections={"role": USER_ROLES},
            kinds=_EMAIL,
        )
    )
    registry.register(model_from_orm("tag", m.Tag, label="Tag", relations={}))
    registry.register(
        model_from_orm("mailing_list", m.MailingList, label="Mailing list", relations={})
    )
    registry.register(model_from_orm("event", m.Event, label="Event", relations={}))
    registry.register(
        model_from_orm(
            "contact",
            m.Contact,
            label="Contact",
            relations={"salesperson": "user", "tags": "tag"},
            labels={"company_name": "Company", "country_code": "Country", "tz": "Timezone"},
            hidden=_HIDE_VALIDITY,
            kinds={**_EMAIL, **_PHONE, "mobile": "phone"},
            is_target=True,
        )
    )
    registry.register(
        model_from_orm(
            "lead",
            m.Lead,
            label="Lead/Opportunity",
            relations={"contact": "contact", "salesperson": "user", "tags": "tag"},
            selections={"type": ("lead", "opportunity"), "stage": LEAD_STAGES},
            hidden=_HIDE_VALIDITY,
            kinds={**_EMAIL, **_PHONE},
            is_target=True,
        )
    )
    registry.register(
        model_from_orm(
            "mailing_subscription",
            m.MailingSubscription,
            label="List subscription",
            relations={"contact": "mailing_contact", "list": "mailing_list"},
            readonly=("id",),
            rec_name="id",
        )
    )
    registry.register(
        model_from_orm(
            "mailing_contact",
            m.MailingContact,
            label="Mailing contact",
            relations={"subscriptions": "mailing_subscription", "tags": "tag"},
            labels={"company_name": "Company", "country_code": "Country"},
            hidden=_HIDE_VALIDITY,
            kinds={**_EMAIL, **_PHONE},
            is_target=True,
        )
    )
    registry.register(
        model_from_orm(
            "event_registration",
            m.EventRegistration,
            label="Event registration",
            relations={"event": "event", "contact": "contact"},
            labels={"name": "Attendee name"},
            selections={"state": REGISTRATION_STATES},
            hidden=_HIDE_VALIDITY,
            kinds={**_EMAIL, **_PHONE},
            is_target=True,
        )
    )
    registry.register(
        model_from_orm(
            "crm_activity",
            m.CrmActivity,
            label="CRM activity",
            relations={"user": "user"},
            selections={"activity_type": CRM_ACTIVITY_TYPES},
            rec_name="summary",
        )
    )
    return registry


REGISTRY = build_registry()
