"""Create a campaign from a template: one generic function for every template.

Everything goes through the shared services (campaigns, server actions, email templates,
lists and tags), in the caller's transaction: a refusal raises before the caller commits,
so a template is created whole or not at all.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

import nurture.actions  # noqa: F401  (registers the server action kinds)
from nurture.actions import service as action_service
from nurture.campaign_templates.catalog import TEMPLATES
from nurture.campaign_templates.spec import DEFAULT_WEBSITE, WEBSITE, CampaignTemplate
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns
from nurture.campaigns.models import Campaign
from nurture.channels.email import service as email_service
from nurture.errors import NotFound, ValidationError
from nurture.records import mailing_lists, tags

_BY_KEY: dict[str, CampaignTemplate] = {t.key: t for t in TEMPLATES}


def template_key(name: str) -> str:
    """``"Double Opt-in"``, ``"double-opt-in"`` and ``"double_opt_in"`` → ``double_opt_in``."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def list_templates() -> list[CampaignTemplate]:
    return list(TEMPLATES)


def get_template(name: str) -> CampaignTemplate:
    """The template whose key or title is ``name``, or :class:`NotFound` naming it."""
    template = _BY_KEY.get(template_key(name))
    if template is None:
        known = ", ".join(_BY_KEY)
        raise NotFound(f"unknown campaign template {name!r} (known: {known})", field="key")
    return template


def _plain(value: Any) -> Any:
    """Tuples (how the frozen templates hold domains and payloads) as JSON lists."""
    return json.loads(json.dumps(value))


def _check_website(website: str) -> str:
    website = website.strip().rstrip("/")
    parts = urlsplit(website)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(f"website must be an http(s) URL, not {website!r}", field="website")
    return website


def create_from_template(
    *,
    session: Session,
    now: datetime,
    key: str | CampaignTemplate,
    name: str | None = None,
    responsible_id: int | None = None,
    website: str = DEFAULT_WEBSITE,
) -> Campaign:
    """Create the campaign of template ``key`` (key or title, or a template given as data)
    in ``draft``.

    Creates its lists and tags when missing (reused when present), its server actions, its
    activity tree and the email template of each email activity; ``website`` is where the
    emails' call-to-action buttons lead. Returns the campaign.
    """
    template = key if isinstance(key, CampaignTemplate) else get_template(key)
    site = _check_website(website)
    list_ids = {
        list_name: mailing_lists.get_or_create_mailing_list(session=session, name=list_name, now=now)
        for list_name in template.lists
    }
    if template.tags:
        tags.get_or_create_tags(session=session, names=template.tags)
    campaign = campaigns.create_campaign(
        session=session,
        now=now,
        name=name or template.title,
        model=template.model,
        domain=_plain(template.domain),
        unicity_field=template.unicity_field,
        responsible_id=responsible_id,
    )
    action_ids: dict[str, int] = {}
    for spec in template.actions:
        payload = _plain(dict(spec.payload))
        if spec.steps:
            payload["actions"] = [action_ids[step] for step in spec.steps]
        action = action_service.create_server_action(
            session=session,
            now=now,
            name=spec.name,
            model=template.model,
            action_type=spec.action_type,
            payload=payload,
        )
        action_ids[spec.key] = action.id
    activity_ids: dict[str, int] = {}
    for act in template.activities:
        activity = activity_service.add_activity(
            session=session,
            now=now,
            campaign_id=campaign.id,
            name=act.name,
            activity_type=act.activity_type,
            trigger_type=act.trigger,
            parent_id=activity_ids[act.parent] if act.parent else None,
            interval_number=act.interval,
            interval_unit=act.unit,
            expiry_number=act.expiry,
            expiry_unit=act.expiry_unit,
            domain=_plain(act.domain),
            server_action_id=action_ids[act.action] if act.action else None,
        )
        activity_ids[act.key] = activity.id
        if act.email is not None:
            email = act.email
            list_id = None
            if email.mailing_list:
                list_id = list_ids.get(email.mailing_list) or mailing_lists.get_or_create_mailing_list(
                    session=session, name=email.mailing_list, now=now
                )
            email_service.create_template(
                session=session,
                now=now,
                activity_id=activity.id,
                subject=email.subject,
                preview=email.preview,
                body_html=email.body_html.replace(WEBSITE, site),
                mailing_list_id=list_id,
            )
    session.refresh(campaign)
    return campaign
