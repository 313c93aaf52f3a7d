"""``/api/v1/campaign-templates``: viewers list the cards, marketers create campaigns."""

from __future__ import annotations

from sqlalchemy import select

from nurture.campaigns.models import Campaign
from nurture.channels.email.models import EmailTemplate
from tests.api.conftest import Api

V1 = "/api/v1/campaign-templates"


def test_viewer_lists_the_templates(api: Api) -> None:
    r = api.client.get(V1, headers=api.headers("viewer"))
    assert r.status_code == 200
    body = r.json()
    assert [t["key"] for t in body] == [
        "tag_hot_contacts",
        "welcome_flow",
        "double_opt_in",
        "commercial_prospection",
        "schedule_calls",
        "prioritize_hot_leads",
    ]
    assert body[2] == {
        "key": "double_opt_in",
        "title": "Double Opt-in",
        "description": "Send an email to new recipients to confirm their consent.",
        "model": "mailing_contact",
    }
    assert api.client.get(V1).status_code == 401


def test_marketer_creates_a_campaign_from_a_template(api: Api) -> None:
    r = api.client.post(
        f"{V1}/double_opt_in/campaigns",
        headers=api.headers("marketer"),
        json={"website": "https://acme.test"},
    )
    assert r.status_code == 201, r.text
    campaign = r.json()
    assert (campaign["name"], campaign["model"], campaign["state"]) == (
        "Double Opt-in",
        "mailing_contact",
        "draft",
    )
    assert campaign["responsible_id"] == api.user_ids["marketer"]
    assert [(a["name"], a["trigger_type"]) for a in campaign["activities"]] == [
        ("Confirmation", "begin"),
        ("Add to list", "mail_click"),
    ]
    with api.db.read() as s:
        (template,) = s.scalars(
            select(EmailTemplate).where(EmailTemplate.campaign_id == campaign["id"])
        )
        assert 'href="https://acme.test/newsletter/confirmed"' in template.body_html
    # the title works too, and no body gives the defaults
    again = api.client.post(f"{V1}/Double Opt-in/campaigns", headers=api.headers("admin"))
    assert again.status_code == 201 and again.json()["id"] != campaign["id"]
    audit = api.client.get("/api/v1/audit", headers=api.headers("admin")).json()
    assert any(e["action"] == "campaign.create" for e in audit["items"])


def test_refusals(api: Api) -> None:
    viewer = api.client.post(f"{V1}/welcome_flow/campaigns", headers=api.headers("viewer"))
    assert viewer.status_code == 403
    unknown = api.client.post(f"{V1}/black_friday/campaigns", headers=api.headers("marketer"))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["field"] == "key"
    assert "'black_friday'" in unknown.json()["error"]["message"]
    bad = api.client.post(
        f"{V1}/welcome_flow/campaigns", headers=api.headers("marketer"), json={"website": "ftp://x"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "website"
    with api.db.read() as s:
        assert s.scalars(select(Campaign)).all() == []
