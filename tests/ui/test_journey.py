"""The journey of a new user (issue 14, "Tests"), end to end in headless Chromium.

First start: the setup link creates the administrator, who lands on the empty board with
the six template cards, creates "Double Opt-in" from its card, narrows its filter in the
builder (watching #records follow), saves, adds a "Not opened after 2 days" reminder under
the confirmation email through the activity dialog, launches a test on a new record (runs the
steps, simulates a click, watches the children appear), starts the campaign, lets the engine
run (``nurture tick --now``) and sees participants and figures appear on the tree.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from nurture import audience
from nurture.accounts.setup import make_setup_token
from nurture.campaigns.models import Activity, Campaign
from nurture.channels.email.transports import MemoryOutbox
from nurture.clock import utcnow
from nurture.engine.models import Participant
from nurture.records import blacklists, mailing_lists
from nurture.records import service as records
from nurture.records.models import MailingContact
from nurture.worker.loop import tick
from tests.ui.conftest import PASSWORD, UiServer, axe, shot

#: mailing contacts: (name, email, country, subscribed to Newsletter, blacklisted)
PEOPLE = (
    ("Ada Lovelace", "ada@example.org", "GB", True, False),
    ("Brigitte Bardot", "brigitte@example.fr", "FR", True, False),
    ("Camille Claudel", "camille@example.fr", "FR", True, False),
    ("Denis Diderot", "denis@example.fr", "FR", True, True),  # blacklisted: never enrolled
    ("Émile Zola", "emile@example.fr", "FR", False, False),  # not on the list
    ("Frida Kahlo", "frida@example.mx", "MX", False, False),
)


def _subscribers(ui: UiServer) -> None:
    now = utcnow() - timedelta(days=1)
    with ui.db.transaction() as s:
        newsletter = mailing_lists.get_or_create_mailing_list(session=s, name="Newsletter", now=now)
        for name, email, country, subscribed, blacklisted in PEOPLE:
            rid = records.create_record(
                session=s, model="mailing_contact",
                values={"name": name, "email": email, "country_code": country}, now=now,
            )  # fmt: skip
            if subscribed:
                mailing_lists.subscribe(session=s, contact_id=rid, list_id=newsletter, now=now)
            if blacklisted:
                blacklists.blacklist_email(session=s, email=email, now=now)


def _settled(page: Page) -> None:
    page.wait_for_function(
        "() => !document.querySelector('.filter-builder').classList.contains('fb-counting')"
    )


def test_a_new_user_from_setup_link_to_a_running_campaign(ui_server: UiServer, page: Page) -> None:
    ui = ui_server
    _subscribers(ui)

    # 1. first start: the setup link creates the administrator
    token = make_setup_token(ui.settings.secret_key, now=utcnow())
    page.goto(ui.url(f"/setup?token={token}"))
    expect(page.get_by_role("heading", name="Welcome to Nurture")).to_be_visible()
    page.get_by_label("Your name").fill("Margot Marketing")
    page.get_by_label("Email (your login)").fill("margot@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create the administrator").click()

    page.wait_for_url("**/campaigns")
    expect(page.get_by_text("your administrator account is ready")).to_be_visible()
    # sign out, then in again with the new account
    page.get_by_role("navigation", name="Main").get_by_text("Margot Marketing").click()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    page.get_by_label("Email").fill("margot@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # 2. the board of an empty database: the six template cards
    page.wait_for_url("**/campaigns")
    expect(page.get_by_role("heading", name="Start your first campaign")).to_be_visible()
    expect(page.locator(".tpl-card")).to_have_count(6)
    shot(page, "journey-1-board")
    assert axe(page) == []

    # 3. "Double Opt-in" from its card
    page.get_by_role("button", name="Use this template: Double Opt-in").click()
    page.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    campaign_id = int(page.url.rsplit("/", 1)[1])
    form_url = f"/campaigns/{campaign_id}"
    expect(page.get_by_label("Campaign name")).to_have_value("Double Opt-in")
    expect(page.get_by_text("was created from its template")).to_be_visible()

    # 4. the filter: subscribed to Newsletter, not blacklisted → 3; narrowed to France → 2
    builder = page.locator(".filter-builder")
    count = builder.locator("[data-fb-count]")
    page.wait_for_selector(".fb-root")
    _settled(page)
    expect(count).to_have_text("3")
    expect(page.locator(".workflow-slot #workflow")).to_be_attached()
    shot(page, "journey-2-campaign-form")
    assert axe(page) == []
    builder.get_by_role("button", name="+ Add rule").first.click()
    rules = builder.get_by_role("group", name=re.compile(r"^Rule \d+$"))
    last = rules.last
    number = (last.get_attribute("aria-label") or "").removeprefix("Rule ")
    last.get_by_label(f"Field of rule {number}", exact=True).select_option(label="Country")
    last.get_by_label(f"Operator of rule {number}", exact=True).select_option(label="is equal to")
    last.get_by_label(f"Value of rule {number}", exact=True).fill("FR")
    _settled(page)
    expect(count).to_have_text("2")
    shot(page, "journey-3-filter")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.", exact=True)).to_be_visible()
    with ui.db.read() as s:
        domain = s.scalars(select(Campaign.domain).where(Campaign.id == campaign_id)).one()
    assert "country_code" in domain and "FR" in domain
    with ui.db.read() as s:  # #records is the service's count of the saved filter
        assert audience.count_matching(s, "mailing_contact", json.loads(domain), now=utcnow()) == 2
    page.wait_for_selector(".fb-root")
    _settled(page)
    expect(count).to_have_text("2")

    # 5. a "Not opened after 2 days" reminder under the confirmation email
    with ui.db.read() as s:
        confirmation = s.scalars(
            select(Activity.id).where(Activity.campaign_id == campaign_id, Activity.name == "Confirmation")
        ).one()
    card = page.locator(f"#activity-{confirmation} > article")
    card.locator(".wf-add-child summary").click()
    card.get_by_role("link", name="Not opened", exact=True).click()
    page.wait_for_url(re.compile(r".*/activities/new\?.*"))
    expect(page.get_by_label("Trigger")).to_have_value("mail_not_open")
    expect(page.get_by_label("Parent activity")).to_have_value(str(confirmation))
    page.get_by_label("Name", exact=True).fill("Reminder")
    page.get_by_role("radio", name="Email").check()
    page.get_by_label("Subject").fill("Still interested, {{ record.name }}?")
    page.get_by_label("HTML body").fill("<p>Please confirm your subscription, {{ record.name }}.</p>")
    page.get_by_label("Interval", exact=True).fill("2")
    page.get_by_label("Interval unit").select_option("days")
    shot(page, "journey-4-activity-dialog")
    page.get_by_role("button", name="Save & close").click()
    # back on the campaign form (the page that showed the tree), the child in the tree
    page.wait_for_url(f"**{form_url}")
    expect(page.get_by_text("Activity “Reminder” saved.")).to_be_visible()
    with ui.db.read() as s:
        reminder = s.scalars(select(Activity).where(Activity.parent_id == confirmation, Activity.name == "Reminder")).one()
        assert (reminder.trigger_type, reminder.interval_number, reminder.interval_unit) == ("mail_not_open", 2, "days")
        reminder_id = reminder.id
    child = page.locator(f"#activity-{confirmation} > ol.wf-children > #activity-{reminder_id} > article")
    expect(child.locator(".wf-trigger")).to_have_text("Not opened within 2 days")

    # 6. a test on a new record: run the steps, simulate a click, the children appear
    page.get_by_role("button", name="Launch a test").click()
    page.wait_for_url(f"**{form_url}/test")
    page.get_by_label("Name", exact=True).fill("Test Person")
    page.get_by_label("Email", exact=True).fill("test.person@example.com")
    page.get_by_role("button", name="Create and launch the test").click()
    page.wait_for_url("**/tests/*")
    steps = page.locator("#test-steps")

    def step(name: str) -> Locator:
        return steps.locator("li.step").filter(has=page.locator("strong", has_text=name))

    expect(step("Confirmation").locator(".badge")).to_have_text("scheduled")
    for name in ("Add to list", "Reminder"):  # the email's children are not reached yet
        expect(step(name).locator(".trace")).to_have_text("not reached")
    # the steps check the campaign's filter (as in Odoo): the new person joins the
    # Newsletter, in France (the records screens are part 2 of the UI: the services do it)
    expect(page.get_by_text("test.person@example.com")).to_be_visible()
    with ui.db.transaction() as s:
        now = utcnow()
        person = s.scalars(select(MailingContact.id).where(MailingContact.email == "test.person@example.com")).one()
        records.update_record(session=s, model="mailing_contact", record_id=person, values={"country_code": "FR"}, now=now)
        newsletter = mailing_lists.get_or_create_mailing_list(session=s, name="Newsletter", now=now)
        mailing_lists.subscribe(session=s, contact_id=person, list_id=newsletter, now=now)
    shot(page, "journey-5-test")
    step("Confirmation").get_by_role("button", name="Run").click()
    expect(page.get_by_role("status").filter(has_text="Step run: 1 processed")).to_be_visible()
    expect(step("Confirmation").get_by_role("link", name="Email as sent")).to_be_visible()
    # the children appear, waiting for the recipient's reaction
    expect(step("Add to list").locator(".trace")).to_contain_text("waiting for the event")
    reminder_due = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%d")
    expect(step("Reminder").locator(".trace")).to_contain_text(f"due {reminder_due}")
    shot(page, "journey-6-test-sent")
    steps.get_by_role("button", name="Simulate: Clicked (Confirmation)").click()
    expect(page.get_by_role("status").filter(has_text="Simulated “click”")).to_be_visible()
    expect(step("Confirmation").locator(".badge", has_text="clicked")).to_be_visible()
    step("Add to list").get_by_role("button", name="Run").click()
    expect(step("Add to list").locator(".badge").first).to_have_text("processed")
    shot(page, "journey-7-test-clicked")

    # 7. start the campaign, then the engine runs (nurture tick --now)
    page.goto(ui.url(form_url))
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".statusbar [aria-current=step]")).to_have_text("Running")
    outbox = MemoryOutbox()
    tick(ui.db, now=utcnow() + timedelta(hours=2), worker_id="journey", email_transport=outbox)
    # the worker sends what was queued: the test's confirmation, and one per participant
    # (the test person matches the filter too: tests do not count in de-duplication)
    assert sorted(r for e in outbox.entries for r in e.recipients) == [
        "brigitte@example.fr", "camille@example.fr", "test.person@example.com", "test.person@example.com",
    ]

    # 8. participants and figures on the tree
    page.reload()
    counters = page.get_by_role("navigation", name="Campaign figures")
    expect(counters.get_by_role("link", name=re.compile("^3 Participants"))).to_be_visible()
    expect(counters.get_by_role("link", name=re.compile("^1 Tests"))).to_be_visible()
    email_card = page.locator(f"#activity-{confirmation} > article")
    expect(email_card.locator(".wf-success strong")).to_have_text("3")
    expect(email_card.locator(".wf-msg li").first).to_have_text(re.compile(r"Sent\s*3"))
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, "journey-8-running")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert axe(page) == []
    with ui.db.read() as s:
        real = s.scalars(
            select(Participant).where(Participant.campaign_id == campaign_id, Participant.is_test.is_(False))
        ).all()
        assert len(real) == 3
    email_card.get_by_role("link", name=re.compile("^Sent")).click()
    expect(page.locator("table.participants tbody tr")).to_have_count(3)
