"""Screen 3: the campaign form (fields, validation, header buttons, banner, smart counters)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from nurture.campaigns import campaigns as cs
from nurture.clock import utcnow
from nurture.engine import campaign_changes
from tests.ui.conftest import UiServer, axe, count_sql, filter_code_view, shot
from tests.ui.helpers_campaigns import bulk_contacts, csrf_of, past, running_campaign


def test_new_campaign_validation_keeps_input_then_creates(ui: UiServer, page: Page) -> None:
    ui.login(page, "marketer")
    page.get_by_role("button", name="New campaign").click()
    page.wait_for_url("**/campaigns/new")
    page.get_by_label("Target").select_option("lead")
    expect(page.get_by_label("Unicity field")).to_contain_text("Email")  # the lead's fields
    page.get_by_label("Responsible").select_option(label="Viewer User")
    filter_code_view(page).fill('[["email", "!=", false]]')
    page.get_by_role("button", name="Create campaign").click()
    expect(page.locator("#name-error")).to_have_text("name is required")
    expect(page.get_by_label("Campaign name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Target")).to_have_value("lead")  # input kept
    expect(page.get_by_label("Responsible")).to_have_value(str(ui.user_ids["viewer"]))
    shot(page, "campaign-new-error")
    assert axe(page) == []
    filter_code_view(page).fill('[["no_such_field", "=", 1]]')
    expect(page.locator("[data-fb-code-error]")).to_contain_text("no_such_field")  # checked as typed
    page.get_by_label("Campaign name").fill("Lead follow-up")
    page.get_by_role("button", name="Create campaign").click()
    expect(page.locator("#fb-filter-error")).to_contain_text("no_such_field")
    expect(page.get_by_label("Campaign name")).to_have_value("Lead follow-up")
    filter_code_view(page).fill("[[oops")
    expect(page.locator("[data-fb-code-error]")).to_be_visible()
    page.get_by_role("button", name="Create campaign").click()
    expect(page.locator("#fb-filter-error")).to_contain_text("neither JSON nor a Python literal")
    expect(filter_code_view(page)).to_have_value("[[oops")  # kept as typed
    filter_code_view(page).fill('[["email", "!=", false]]')
    page.get_by_role("button", name="Create campaign").click()
    page.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    expect(page.get_by_text("The campaign was created.")).to_be_visible()
    expect(page.locator(".statusbar [aria-current=step]")).to_have_text("New")
    expect(page.get_by_role("button", name="Start")).to_be_visible()
    # the workflow tree arrives by its own request
    expect(page.locator(".workflow-slot #workflow")).to_be_attached()
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_text("add at least one activity before starting")).to_be_visible()


def test_header_buttons_banner_and_counters(ui: UiServer, page: Page) -> None:
    bulk_contacts(ui.db, 12, now=past(3))
    cid, first, _ = running_campaign(ui.db, now=past(2))
    ui.login(page, "admin", next_path=f"/campaigns/{cid}")
    expect(page.locator(".statusbar [aria-current=step]")).to_have_text("Running")
    counters = page.get_by_role("navigation", name="Campaign figures")
    expect(counters.get_by_role("link", name=re.compile("^12 Participants"))).to_be_visible()
    expect(counters.get_by_role("link", name=re.compile("^0 Tests"))).to_be_visible()
    expect(page.get_by_role("button", name="Launch a test")).to_have_attribute("href", f"/campaigns/{cid}/test")
    with ui.db.transaction() as s:  # edited while running: "workflow modified"
        campaign_changes.edit_activity(session=s, now=utcnow(), activity_id=first + 1, interval_number=3)
    page.reload()
    banner = page.get_by_role("status").filter(has_text="The workflow was modified")
    expect(banner).to_be_visible()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, "campaign-form")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert axe(page) == []
    page.get_by_role("button", name="Update").click()
    expect(page.get_by_text("The workflow changes were applied")).to_be_visible()
    expect(banner).to_have_count(0)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".statusbar [aria-current=step]")).to_have_text("Stopped")
    counters.get_by_role("link", name=re.compile("Participants")).click()
    expect(page.locator("table.participants tbody tr")).to_have_count(12)
    page.go_back()
    page.get_by_role("link", name=re.compile("Clicks")).click()
    expect(page.get_by_role("heading", name="Clicked links")).to_be_visible()
    page.go_back()
    page.get_by_role("link", name=re.compile("Templates")).click()
    expect(page.get_by_text("No email or SMS activity in this campaign yet.")).to_be_visible()
    page.go_back()
    page.get_by_role("button", name="Duplicate").click()
    expect(page.get_by_label("Campaign name")).to_have_value("Spring welcome (copy)")
    expect(page.locator(".statusbar [aria-current=step]")).to_have_text("New")
    page.on("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete", exact=True).click()
    page.wait_for_url("**/campaigns")
    expect(page.get_by_text("“Spring welcome (copy)” was deleted.")).to_be_visible()
    expect(page.locator(".camp-card")).to_have_count(1)


def test_templates_counter_lists_a_template_campaign(ui: UiServer, page: Page) -> None:
    ui.login(page, "marketer")
    page.get_by_role("button", name="Use this template: Commercial prospection").click()
    page.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    page.get_by_role("link", name=re.compile("^3 Templates")).click()
    expect(page.locator("tbody tr")).to_have_count(3)
    shot(page, "campaign-templates")
    assert axe(page) == []


def test_viewer_sees_no_edit_controls_and_forged_writes_are_refused(ui: UiServer, page: Page) -> None:
    cid, _, _ = running_campaign(ui.db, now=past(1))
    ui.login(page, "viewer", next_path=f"/campaigns/{cid}")
    expect(page.get_by_label("Campaign name")).to_have_attribute("readonly", "")
    for name in ("Start", "Stop", "Save", "Duplicate", "Delete", "Update"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    shot(page, "campaign-form-viewer")
    token = csrf_of(page)
    for path in ("stop", "delete", "duplicate", ""):
        url = ui.url(f"/campaigns/{cid}/{path}".rstrip("/"))
        assert page.request.post(url, form={"csrf_token": token, "name": "x"}).status == 403


def test_forged_csrf_token_is_refused(ui: UiServer, page: Page) -> None:
    cid, _, _ = running_campaign(ui.db, now=past(1))
    ui.login(page, "admin", next_path=f"/campaigns/{cid}")
    page.locator(f"form[action='/campaigns/{cid}/stop'] input[name=csrf_token]").evaluate("el => el.value = 'forged'")
    with page.expect_response(lambda r: r.url.endswith("/stop")) as info:
        page.get_by_role("button", name="Stop").click()
    assert info.value.status == 403


def test_form_statement_count_does_not_grow_with_participants(ui: UiServer, page: Page) -> None:
    bulk_contacts(ui.db, 10, now=past(3), prefix="few")
    few_id, _, _ = running_campaign(ui.db, now=past(2), name="Few")
    with ui.db.transaction() as s:  # stopped: it does not enrol the next contacts
        cs.stop_campaign(session=s, now=past(2), campaign_id=few_id)
    bulk_contacts(ui.db, 990, now=past(3), prefix="many")
    many_id, _, _ = running_campaign(ui.db, now=past(2), name="Many")
    ui.login(page, "admin", next_path=f"/campaigns/{few_id}/templates")  # no htmx request
    # the form's own request (the workflow fragment is another screen's request)
    with count_sql(ui.db) as few:
        assert ">10<" in page.request.get(ui.url(f"/campaigns/{few_id}")).text()
    with count_sql(ui.db) as many:
        assert ">1,000<" in page.request.get(ui.url(f"/campaigns/{many_id}")).text()
    assert len(few) == len(many), (few, many)
