"""Building campaigns from templates: drafts that validate, lists and tags reused, errors."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.campaign_templates import TEMPLATES, create_from_template, get_template
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.campaigns.models import Campaign, ServerAction
from nurture.channels.email import service as email_service
from nurture.channels.email.models import EmailTemplate
from nurture.errors import NotFound, ValidationError
from nurture.records import mailing_lists, tags
from nurture.records import models as m
from nurture.records import service as records
from tests.channels.email.integration.conftest import T0

KEYS = [t.key for t in TEMPLATES]


def test_the_six_cards_of_the_spec() -> None:
    assert [(t.title, t.model) for t in TEMPLATES] == [
        ("Tag Hot Contacts", "contact"),
        ("Welcome Flow", "mailing_contact"),
        ("Double Opt-in", "mailing_contact"),
        ("Commercial prospection", "lead"),
        ("Schedule Calls", "lead"),
        ("Prioritize Hot leads", "lead"),
    ]
    assert (
        get_template("Double Opt-in")
        is get_template("double-opt-in")
        is get_template("double_opt_in")
    )


@pytest.mark.parametrize("key", KEYS)
def test_each_template_creates_a_draft_campaign_that_validates(session: Session, key: str) -> None:
    template = get_template(key)
    campaign = create_from_template(session=session, now=T0, key=key)
    assert (campaign.name, campaign.model, campaign.state) == (
        template.title,
        template.model,
        "draft",
    )
    activities = list(campaign.activities)
    assert [a.name for a in activities] == [a.name for a in template.activities]
    by_key = dict(zip([a.key for a in template.activities], activities, strict=True))
    for spec in template.activities:
        activity = by_key[spec.key]
        assert (activity.trigger_type, activity.interval_number, activity.interval_unit) == (
            spec.trigger,
            spec.interval,
            spec.unit,
        )
        assert activity.parent_id == (by_key[spec.parent].id if spec.parent else None)
        if spec.activity_type == "email":
            email = email_service.template_for_activity(session=session, activity_id=activity.id)
            assert email is not None
            preview = email_service.preview_template(session=session, template_id=email.id)
            assert "https://www.example.com/" in preview.html  # the call to action
            assert preview.subject and "%WEBSITE%" not in preview.html
        else:
            assert activity.server_action_id is not None
    # the filters compile, and it starts (it has activities; every action is valid)
    cs.campaign_count(session, campaign_id=campaign.id, now=T0)
    for activity in activities:
        activity_service.applied_count(session, activity_id=activity.id, now=T0)
    assert cs.start_campaign(session=session, now=T0, campaign_id=campaign.id).state == "running"


def test_creating_twice_reuses_lists_and_tags(session: Session) -> None:
    newsletter = mailing_lists.get_or_create_mailing_list(session=session, name="Newsletter", now=T0)
    tags.get_or_create_tags(session=session, names=["hot"])  # tag names match in any case
    for _ in range(2):
        for key in KEYS:
            create_from_template(session=session, now=T0, key=key)

    def count(model: type[m.MailingList] | type[m.Tag], name: str) -> int:
        return int(
            session.scalar(select(func.count()).select_from(model).where(model.name == name)) or 0
        )

    assert count(m.MailingList, "Newsletter") == 1
    assert count(m.MailingList, "Confirmed contacts") == 1
    assert count(m.Tag, "hot") == 1 and count(m.Tag, "Hot") == 0
    assert count(m.Tag, "Catalog opened") == 1
    assert session.scalar(select(func.count()).select_from(Campaign)) == 12
    lists = set(
        session.scalars(
            select(EmailTemplate.mailing_list_id).where(EmailTemplate.mailing_list_id.is_not(None))
        )
    )
    assert lists == {newsletter}
    # server actions are the campaign's own: one set per campaign
    assert (
        session.scalar(
            select(func.count())
            .select_from(ServerAction)
            .where(ServerAction.name == "Add to Confirmed contacts")
        )
        == 2
    )


def test_name_responsible_and_website(session: Session) -> None:
    user = records.create_record(
        session=session, model="user", values={"login": "ann@acme.test", "name": "Ann"}, now=T0
    )
    campaign = create_from_template(
        session=session,
        now=T0,
        key="Tag Hot Contacts",
        name="Spring welcome",
        responsible_id=user,
        website="https://acme.test/",
    )
    assert (campaign.name, campaign.responsible_id) == ("Spring welcome", user)
    email = email_service.template_for_activity(
        session=session, activity_id=campaign.activities[0].id
    )
    assert email is not None and 'href="https://acme.test/shop"' in email.body_html


def test_unknown_template_names_the_key(session: Session) -> None:
    with pytest.raises(NotFound) as caught:
        create_from_template(session=session, now=T0, key="Black Friday")
    assert "'Black Friday'" in caught.value.message and "double_opt_in" in caught.value.message
    assert caught.value.field == "key"
    with pytest.raises(ValidationError) as bad:
        create_from_template(
            session=session, now=T0, key="welcome_flow", website="javascript:alert(1)"
        )
    assert bad.value.field == "website"
    assert session.scalar(select(func.count()).select_from(Campaign)) == 0
