"""Screen 6, the activity dialog: email editor with a live preview for a chosen record and
save-time errors with line and column, SMS editor with its counter, server action picked or
created in a sub-dialog (errors name the field), validation keeping the input, roles, CSRF."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.campaigns.models import Activity, ServerAction
from nurture.channels.email import service as email_service
from nurture.channels.sms import service as sms_service
from nurture.clock import utcnow
from nurture.records.models import Contact
from tests.ui.conftest import UiServer, axe, filter_code_view, shot


def _campaign(ui: UiServer, *, running: bool = False) -> int:
    now = utcnow()
    with ui.db.transaction() as s:
        for name, email, city in (("Ada Lovelace", "ada@example.org", "London"), ("Grace Hopper", "grace@example.org", "New York")):
            s.add(Contact(name=name, email=email, city=city, active=True, created_at=now, updated_at=now))
        cid = cs.create_campaign(session=s, now=now, name="Newsletter", model="contact").id
        if running:
            activity_service.add_activity(session=s, now=now, campaign_id=cid, name="First", activity_type="action",
                            server_action_id=action_service.create_server_action(session=s, now=now, name="Tag", model="contact", add_tags=["a"]).id)
            cs.start_campaign(session=s, now=now, campaign_id=cid)
    return cid


def _activities(ui: UiServer, cid: int) -> list[Activity]:
    with ui.db.read() as s:
        rows = list(s.scalars(select(Activity).where(Activity.campaign_id == cid).order_by(Activity.id)))
        s.expunge_all()
        return rows


def test_email_editor_previews_for_a_record_at_both_widths(ui: UiServer, page: Page) -> None:
    cid = _campaign(ui)
    ui.login(page, "marketer", next_path=f"/campaigns/{cid}/activities/new")
    expect(page.get_by_role("heading", name="New activity")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Monthly news")
    page.get_by_label("Subject").fill("News for {{ record.name }}")
    body = page.get_by_label("HTML body")
    body.fill("<h1>Hello {{ record.name }}</h1>\n<p>You live in </p>")
    # the placeholder picker inserts at the cursor
    body.evaluate("el => { el.focus(); const i = el.value.indexOf('</p>'); el.setSelectionRange(i, i); }")
    page.get_by_label("Field to insert").first.select_option("record.city")
    page.get_by_role("button", name="Insert placeholder").first.click()
    expect(body).to_have_value("<h1>Hello {{ record.name }}</h1>\n<p>You live in {{ record.city }}</p>")
    # pick a record by searching for it; the preview renders for that record
    page.get_by_label("Search a record").fill("grace")
    expect(page.get_by_label("Record", exact=True).locator("option")).to_have_count(2)
    preview = page.frame_locator("iframe[name=email-preview]")
    expect(preview.locator("h1")).to_have_text("Hello Grace Hopper")
    expect(preview.locator("p").last).to_have_text("You live in New York")
    frame = page.locator("iframe[name=email-preview]")
    assert frame.get_attribute("sandbox") == ""
    desktop = frame.bounding_box()
    page.get_by_label("Mobile").check()
    page.wait_for_function("() => document.getElementById('email-preview').getBoundingClientRect().width <= 375")
    assert desktop is not None and desktop["width"] > 600
    shot(page, "activity-email")
    assert axe(page) == []
    page.set_viewport_size({"width": 390, "height": 900})
    page.get_by_role("button", name="Refresh preview").click()
    expect(preview.locator("h1")).to_have_text("Hello Grace Hopper")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shot(page, "activity-email")
    assert axe(page) == []
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Save & close").click()
    page.wait_for_url(f"**/campaigns/{cid}/workflow")
    (activity,) = _activities(ui, cid)
    with ui.db.read() as s:
        template = email_service.template_for_activity(session=s, activity_id=activity.id)
        assert template is not None and "{{ record.city }}" in template.body_html


def test_preview_document_has_its_own_strict_policy(ui: UiServer, page: Page) -> None:
    cid = _campaign(ui)
    ui.login(page, "admin", next_path=f"/campaigns/{cid}/activities/new")
    token = page.evaluate("() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    r = page.request.post(
        ui.url(f"/campaigns/{cid}/activities/preview/email"),
        form={"csrf_token": token, "subject": "x", "body_html": "<p style='color:red'>Hi</p><script>alert(1)</script>"},
    )
    assert r.status == 200
    csp = r.headers["content-security-policy"]
    assert "sandbox" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert r.headers["x-frame-options"] == "SAMEORIGIN"


def test_unknown_placeholder_is_refused_with_line_and_column(ui: UiServer, page: Page) -> None:
    cid = _campaign(ui)
    ui.login(page, "marketer", next_path=f"/campaigns/{cid}/activities/new")
    page.get_by_label("Name", exact=True).fill("Broken")
    page.get_by_label("Subject").fill("Hello")
    source = "<p>Hello</p>\n<p>{{ record.nickname }}</p>"
    page.get_by_label("HTML body").fill(source)
    preview = page.frame_locator("iframe[name=email-preview]")
    expect(preview.locator("li")).to_contain_text("line 2")
    expect(preview.locator("li")).to_contain_text("nickname")
    page.get_by_role("button", name="Save & close").click()
    error = page.locator("#body_html-error")
    expect(error).to_contain_text(re.compile(r"^Line 2, column \d+: unknown field 'nickname'"))
    expect(error).to_contain_text("nickname")
    expect(page.get_by_label("HTML body")).to_have_attribute("aria-invalid", "true")
    # nothing written, the input kept
    expect(page.get_by_label("HTML body")).to_have_value(source)
    expect(page.get_by_label("Name", exact=True)).to_have_value("Broken")
    assert _activities(ui, cid) == []
    expect(preview.locator("li")).to_contain_text("line 2")
    shot(page, "activity-email-error")
    assert axe(page) == []


def test_validation_errors_are_shown_next_to_their_fields(ui: UiServer, page: Page) -> None:
    cid = _campaign(ui)
    ui.login(page, "marketer", next_path=f"/campaigns/{cid}/activities/new")
    page.get_by_label("Subject").fill("Kept subject")
    page.get_by_label("Interval", exact=True).fill("2")
    page.get_by_role("button", name="Save & close").click()
    expect(page.locator("#name-error")).to_have_text("name is required")
    expect(page.get_by_label("Subject")).to_have_value("Kept subject")
    expect(page.get_by_label("Interval", exact=True)).to_have_value("2")
    page.get_by_label("Name", exact=True).fill("Filtered")
    filter_code_view(page).fill('[["nope", "=", 1]]')
    expect(page.locator("[data-fb-code-error]")).to_contain_text("nope")  # checked as typed
    page.get_by_role("button", name="Save & close").click()
    expect(page.locator("#fb-filter-error")).to_contain_text("nope")
    expect(filter_code_view(page)).to_have_value('[["nope", "=", 1]]')
    filter_code_view(page).fill('[["city", "=", "London"]]')
    page.get_by_label("From").fill("not an address")
    page.get_by_role("button", name="Save & close").click()
    expect(page.locator("#from_addr-error")).to_be_visible()
    page.get_by_label("From").fill("News <news@example.org>")
    page.get_by_role("button", name="Save & new").click()
    page.wait_for_url(re.compile(r".*/activities/new\?back=.*"))
    expect(page.get_by_text("Activity “Filtered” saved.")).to_be_visible()
    expect(page.get_by_label("Name", exact=True)).to_have_value("")
    (saved,) = _activities(ui, cid)
    assert saved.domain == '[["city", "=", "London"]]'
    # the applied filter of the saved activity, read-only, with its #records
    page.goto(ui.url(f"/campaigns/{cid}/activities/{saved.id}"))
    expect(page.locator(".ad-domain")).to_have_text('[["city", "=", "London"]]')
    expect(page.locator("#applied-count")).to_have_text("1 record")
    page.get_by_role("button", name="Discard").click()
    page.wait_for_url(f"**/campaigns/{cid}/workflow")


def test_sms_editor_counts_segments_and_previews(ui: UiServer, page: Page) -> None:
    cid = _campaign(ui)
    ui.login(page, "marketer", next_path=f"/campaigns/{cid}/activities/new?activity_type=sms")
    text = page.get_by_label("Text", exact=True)
    text.fill("Hi {{ record.name }}, see you soon")
    counter = page.locator("#sms-counter")
    expect(counter).to_contain_text("GSM-7")
    expect(counter).to_contain_text("1 segment")
    page.get_by_label("Record", exact=True).select_option(index=1)  # Ada Lovelace
    expect(page.locator(".sms-bubble")).to_contain_text("Hi Ada Lovelace, see you soon")
    text.fill("Hi {{ record.name }} 😀 " + "x" * 80)
    expect(counter).to_contain_text("Unicode (UCS-2)")
    expect(counter).to_contain_text("2 segments")
    text.fill("Hi {{ record.nick }}")
    expect(page.locator(".sms-problems")).to_contain_text("nick")
    shot(page, "activity-sms")
    assert axe(page) == []
    page.set_viewport_size({"width": 390, "height": 900})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shot(page, "activity-sms")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Name", exact=True).fill("Reminder SMS")
    page.get_by_role("button", name="Save & close").click()
    expect(page.locator("#sms_body-error")).to_contain_text("nick")
    text.fill("Hi {{ record.name }}!")
    page.get_by_role("button", name="Save & close").click()
    page.wait_for_url(f"**/campaigns/{cid}/workflow")
    (activity,) = _activities(ui, cid)
    with ui.db.read() as s:
        template = sms_service.template_for_activity(session=s, activity_id=activity.id)
        assert template is not None and template.body == "Hi {{ record.name }}!" and template.opt_out


def test_server_action_created_in_a_sub_dialog_with_field_errors(ui: UiServer, page: Page) -> None:
    cid = _campaign(ui, running=True)
    ui.login(page, "marketer", next_path=f"/campaigns/{cid}/activities/new?activity_type=action")
    page.get_by_label("Name", exact=True).fill("Mark as VIP")
    # saving without an action names the field
    page.get_by_role("button", name="Save & close").click()
    expect(page.locator("#server_action_id-error")).to_contain_text("pick the server action")
    page.get_by_role("button", name="New server action…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="New server action")).to_be_visible()
    dialog.get_by_label("Name").fill("Tag VIP")
    # a webhook: its fields appear; a bad value is refused on its field
    dialog.get_by_label("Kind").select_option("webhook")
    expect(dialog.get_by_label("URL")).to_be_visible()
    expect(dialog.get_by_label("Name")).to_have_value("Tag VIP")
    dialog.get_by_label("URL").fill("https://hooks.example.com/nurture")
    dialog.get_by_label("Retries").fill("9")
    dialog.get_by_role("button", name="Create and select").click()
    expect(dialog.locator("[id='p.retries-error']")).to_contain_text("retries must be between 0 and 5")
    expect(dialog.get_by_label("URL")).to_have_value("https://hooks.example.com/nurture")
    # back to "update record": nothing to change is refused on the field
    dialog.get_by_label("Kind").select_option("update_record")
    dialog.get_by_role("button", name="Create and select").click()
    expect(dialog.locator("[id='p.set_value-error']")).to_contain_text("the action changes nothing")
    shot(page, "activity-server-action")
    assert axe(page) == []
    dialog.get_by_label("Set field").select_option("city")
    dialog.get_by_label("To value").fill("Paris")
    dialog.get_by_label("Add tags").fill("VIP, Gold")
    dialog.get_by_role("button", name="Create and select").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    picker = page.get_by_label("Action to run")
    expect(picker.locator("option:checked")).to_have_text(re.compile("Tag VIP"))
    expect(page.get_by_text("Server action “Tag VIP” created and selected.")).to_be_visible()
    page.get_by_role("button", name="Save & close").click()
    page.wait_for_url(f"**/campaigns/{cid}/workflow")
    with ui.db.read() as s:
        action = s.scalars(select(ServerAction).where(ServerAction.name == "Tag VIP")).one()
        assert action.action_type == "update_record"
        assert '"city": "Paris"' in action.payload and "Gold" in action.payload
        added = s.scalars(select(Activity).where(Activity.name == "Mark as VIP")).one()
        assert added.server_action_id == action.id and added.pending_new
        added_id = added.id
        campaign = cs.get_campaign(session=s, campaign_id=cid)
        assert campaign.workflow_modified  # editing a running campaign needs Update
    expect(page.locator(f"#activity-{added_id} .wf-subtitle")).to_have_text("Tag VIP")


def test_viewer_cannot_open_or_save_the_dialog(ui: UiServer, page: Page) -> None:
    cid = _campaign(ui)
    ui.login(page, "viewer", next_path=f"/campaigns/{cid}/workflow")
    response = page.goto(ui.url(f"/campaigns/{cid}/activities/new"))
    assert response is not None and response.status == 403
    token = page.evaluate("() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    r = page.request.post(
        ui.url(f"/campaigns/{cid}/activities/new"),
        form={"csrf_token": token, "name": "x", "activity_type": "email", "subject": "s", "body_html": "b"},
    )
    assert r.status == 403
    r = page.request.post(ui.url(f"/campaigns/{cid}/server-actions/new"), form={"csrf_token": token, "name": "x"})
    assert r.status == 403
    assert _activities(ui, cid) == []


def test_forged_csrf_token_on_save_is_refused(ui: UiServer, page: Page) -> None:
    cid = _campaign(ui)
    ui.login(page, "admin", next_path=f"/campaigns/{cid}/activities/new")
    page.get_by_label("Name", exact=True).fill("Forged")
    page.get_by_label("Subject").fill("Hello")
    page.locator("#activity-form input[name=csrf_token]").evaluate("el => el.value = 'forged'")
    with page.expect_response(lambda r: r.url.endswith("/activities/new") and r.request.method == "POST") as info:
        page.get_by_role("button", name="Save & close").click()
    assert info.value.status == 403
    assert _activities(ui, cid) == []
