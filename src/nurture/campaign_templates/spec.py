"""The shape of a campaign template: plain frozen data, no behaviour (SPEC §11).

A template names its target, filter and unicity field, the mailing lists and tags it needs
(created when missing, reused when present), the server actions its activities run, and its
activity tree. Activities and actions refer to each other by ``key``; parents come before
their children. Building a campaign from a template is one generic function
(:func:`nurture.campaign_templates.service.create_from_template`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: replaced in email bodies by the website the marketer gives (the call-to-action target)
WEBSITE = "%WEBSITE%"
DEFAULT_WEBSITE = "https://www.example.com"


@dataclass(frozen=True)
class EmailSpec:
    """The email template of an email activity (placeholders: ``{{ record.<field> }}``)."""

    subject: str
    body_html: str
    preview: str = ""
    #: the target list (by name): opted-out contacts are not mailed, unsubscribing leaves it
    mailing_list: str | None = None


@dataclass(frozen=True)
class ActionSpec:
    """A server action on the template's model, stored as data (SPEC §8)."""

    key: str
    name: str
    action_type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    #: ``multi`` only: the keys of the actions to run in order (become their ids)
    steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActivitySpec:
    key: str
    name: str
    activity_type: str  # email | sms | action
    trigger: str = "begin"
    parent: str | None = None  # key of the parent activity
    interval: int = 0
    unit: str = "hours"
    expiry: int | None = None
    expiry_unit: str = "hours"
    #: activity filter (a domain), applies to this activity and its descendants
    domain: tuple[Any, ...] = ()
    email: EmailSpec | None = None
    action: str | None = None  # key of the server action


@dataclass(frozen=True)
class CampaignTemplate:
    key: str
    title: str
    description: str
    model: str
    domain: tuple[Any, ...] = ()
    unicity_field: str | None = None  # default: the model's email field
    lists: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    actions: tuple[ActionSpec, ...] = ()
    activities: tuple[ActivitySpec, ...] = ()
