"""The six campaign templates of SPEC §11, as data.

Keys are the titles in lower case with ``_`` for anything else (``"Double Opt-in"`` →
``double_opt_in``), so either may be used to pick one.
"""

from __future__ import annotations

from nurture.campaign_templates import emails
from nurture.campaign_templates.spec import ActionSpec, ActivitySpec, CampaignTemplate

NEWSLETTER = "Newsletter"
CONFIRMED = "Confirmed contacts"
HOT = "Hot"
CATALOG_OPENED = "Catalog opened"

_EMAIL_SET = ("email", "!=", False)

TAG_HOT_CONTACTS = CampaignTemplate(
    key="tag_hot_contacts",
    title="Tag Hot Contacts",
    description="Send a welcome email to contacts and tag them if they click it.",
    model="contact",
    domain=(_EMAIL_SET,),
    tags=(HOT,),
    actions=(ActionSpec("tag_hot", "Tag as Hot", "update_record", {"add_tags": [HOT]}),),
    activities=(
        ActivitySpec("welcome", "Welcome", "email", interval=1, email=emails.WELCOME_CONTACT),
        ActivitySpec(
            "tag_hot", "Tag Hot", "action", trigger="mail_click", parent="welcome", action="tag_hot"
        ),
    ),
)

WELCOME_FLOW = CampaignTemplate(
    key="welcome_flow",
    title="Welcome Flow",
    description="Send a welcome email to new subscribers, remove the address that bounced.",
    model="mailing_contact",
    domain=(("subscriptions.list.name", "=", NEWSLETTER),),
    lists=(NEWSLETTER,),
    actions=(
        ActionSpec(
            "blacklist",
            "Blacklist the address",
            "blacklist",
            {"what": "email", "reason": "The welcome email bounced"},
        ),
        ActionSpec(
            "leave_list", "Remove from Newsletter", "remove_from_list", {"list": NEWSLETTER}
        ),
        ActionSpec(
            "remove_bounced",
            "Blacklist and remove from Newsletter",
            "multi",
            steps=("blacklist", "leave_list"),
        ),
    ),
    activities=(
        ActivitySpec("welcome", "Welcome", "email", email=emails.WELCOME_SUBSCRIBER),
        ActivitySpec(
            "remove",
            "Remove bounced address",
            "action",
            trigger="mail_bounce",
            parent="welcome",
            action="remove_bounced",
        ),
    ),
)

DOUBLE_OPT_IN = CampaignTemplate(
    key="double_opt_in",
    title="Double Opt-in",
    description="Send an email to new recipients to confirm their consent.",
    model="mailing_contact",
    # blacklisted addresses are not enrolled at all
    domain=(
        _EMAIL_SET,
        ("subscriptions.list.name", "=", NEWSLETTER),
        ("is_blacklisted", "=", False),
    ),
    lists=(NEWSLETTER, CONFIRMED),
    actions=(
        ActionSpec("confirm", "Add to Confirmed contacts", "add_to_list", {"list": CONFIRMED}),
    ),
    activities=(
        ActivitySpec(
            "confirmation", "Confirmation", "email", interval=1, email=emails.CONFIRMATION
        ),
        ActivitySpec(
            "add_to_list",
            "Add to list",
            "action",
            trigger="mail_click",
            parent="confirmation",
            action="confirm",
        ),
    ),
)

COMMERCIAL_PROSPECTION = CampaignTemplate(
    key="commercial_prospection",
    title="Commercial prospection",
    description="Send a free catalog and follow-up according to reactions.",
    model="lead",
    domain=(_EMAIL_SET,),
    tags=(CATALOG_OPENED,),
    actions=(
        ActionSpec(
            "call",
            "Schedule a call",
            "crm_activity",
            {
                "activity_type": "call",
                "summary": "Call {{ record.name }}: clicked the free catalog",
                "due_in": 1,
                "due_unit": "days",
                "user_field": "salesperson",
            },
        ),
        ActionSpec(
            "mark_opened", "Tag Catalog opened", "update_record", {"add_tags": [CATALOG_OPENED]}
        ),
    ),
    activities=(
        ActivitySpec("catalog", "Free catalog", "email", email=emails.FREE_CATALOG),
        ActivitySpec(
            "call",
            "Schedule a call",
            "action",
            trigger="mail_click",
            parent="catalog",
            action="call",
        ),
        ActivitySpec(
            "reminder",
            "Reminder",
            "email",
            trigger="mail_not_open",
            parent="catalog",
            interval=7,
            unit="days",
            email=emails.REMINDER,
        ),
        # "opened but not clicked": the open tags the lead, the offer goes to tagged leads only
        ActivitySpec(
            "opened",
            "Catalog opened",
            "action",
            trigger="mail_open",
            parent="catalog",
            action="mark_opened",
        ),
        ActivitySpec(
            "offer",
            "Special offer",
            "email",
            trigger="mail_not_click",
            parent="catalog",
            interval=3,
            unit="days",
            domain=(("tags.name", "=", CATALOG_OPENED),),
            email=emails.SPECIAL_OFFER,
        ),
    ),
)

SCHEDULE_CALLS = CampaignTemplate(
    key="schedule_calls",
    title="Schedule Calls",
    description=(
        "If a lead is created for existing contact, schedule a call with their salesperson."
    ),
    model="lead",
    domain=(("contact", "!=", False),),
    unicity_field="id",
    actions=(
        ActionSpec(
            "call",
            "Call with the contact's salesperson",
            "crm_activity",
            {
                "activity_type": "call",
                "summary": "Call {{ record.contact.name }} about {{ record.name }}",
                "due_in": 1,
                "due_unit": "days",
                "user_field": "contact.salesperson",
            },
        ),
    ),
    activities=(ActivitySpec("call", "Schedule a call", "action", action="call"),),
)

PRIORITIZE_HOT_LEADS = CampaignTemplate(
    key="prioritize_hot_leads",
    title="Prioritize Hot leads",
    description="Send an email to new leads and assign them a high priority if they open it.",
    model="lead",
    domain=(("type", "=", "lead"), ("stage", "=", "New"), _EMAIL_SET),
    actions=(
        ActionSpec("prioritize", "Set high priority", "update_record", {"set": {"priority": 3}}),
    ),
    activities=(
        ActivitySpec("email", "Send email", "email", interval=1, email=emails.HOT_LEAD),
        ActivitySpec(
            "prioritize",
            "Prioritize",
            "action",
            trigger="mail_open",
            parent="email",
            action="prioritize",
        ),
    ),
)

TEMPLATES: tuple[CampaignTemplate, ...] = (
    TAG_HOT_CONTACTS,
    WELCOME_FLOW,
    DOUBLE_OPT_IN,
    COMMERCIAL_PROSPECTION,
    SCHEDULE_CALLS,
    PRIORITIZE_HOT_LEADS,
)
