"""Screen 7: the test page — launch a test, run the steps, simulate events, stop."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import select

from nurture.campaign_templates import create_from_template
from nurture.clock import utcnow
from nurture.engine.models import Participant, Trace
from nurture.records import service as records
from tests.ui.conftest import UiServer, axe, shot


def _campaign(ui: UiServer) -> int:
    now = utcnow()
    with ui.db.transaction() as s:
        records.create_record(
            session=s, model="contact", values={"name": "Grace Hopper", "email": "grace@example.com"}, now=now
        )
        records.create_record(
            session=s, model="contact", values={"name": "Alan Turing", "email": "alan@example.com"}, now=now
        )
        campaign = create_from_template(session=s, now=now, key="tag_hot_contacts")
        return campaign.id


def test_run_a_test_from_search_to_completion(ui: UiServer, page: Page) -> None:
    campaign_id = _campaign(ui)
    ui.login(page, "marketer", next_path=f"/campaigns/{campaign_id}/test")
    expect(page.get_by_role("heading", name="Launch a test")).to_be_visible()
    page.get_by_label("Search by name or email").fill("grace")
    expect(page.get_by_text("Alan Turing")).to_have_count(0)
    shot(page, "test-launch")
    assert axe(page) == []
    page.get_by_role("button", name="Test on Grace Hopper").click()
    page.wait_for_url("**/tests/*")
    expect(page.get_by_text("Grace Hopper")).to_be_visible()
    expect(page.locator("#test-audience-warning")).to_have_count(0)
    steps = page.locator("#test-steps")
    expect(steps.get_by_text("Welcome")).to_be_visible()
    # the email step is scheduled (1 hour after start); Run ignores the delay
    steps.get_by_role("button", name="Run").click()
    expect(page.get_by_role("status").filter(has_text="Step run: 1 processed")).to_be_visible()
    expect(steps.get_by_role("link", name="Email as sent")).to_be_visible()
    # the click child waits for the event
    expect(steps.get_by_text("waiting for the event")).to_be_visible()
    shot(page, "test-page")
    assert axe(page) == []
    steps.get_by_role("button", name="Simulate: Clicked (Welcome)").click()
    expect(page.get_by_role("status").filter(has_text="Simulated “click”")).to_be_visible()
    expect(steps.locator(".badge", has_text="clicked")).to_be_visible()
    steps.get_by_role("button", name="Run").click()
    expect(page.locator("#test-state")).to_have_text("Completed")
    with ui.db.read() as s:
        participant = s.scalars(select(Participant).where(Participant.is_test.is_(True))).one()
        assert participant.state == "completed"
        assert sorted(t.state for t in s.scalars(select(Trace))) == ["processed", "processed"]
    # the email as sent
    page.get_by_role("link", name="Email as sent").click()
    expect(page.get_by_text("grace@example.com").first).to_be_visible()
    shot(page, "test-message")


def test_page_follows_changes_without_reload(ui: UiServer, page: Page) -> None:
    campaign_id = _campaign(ui)
    ui.login(page, "admin", next_path=f"/campaigns/{campaign_id}/test")
    page.get_by_role("button", name="Test on Alan Turing").click()
    page.wait_for_url("**/tests/*")
    # another actor (the API, another tab) stops the test: the page shows it by itself
    from nurture.engine import testmode

    with ui.db.transaction() as s:
        pid = s.scalars(select(Participant.id)).one()
        testmode.stop_test(s, participant_id=pid, now=utcnow())
    expect(page.locator("#test-state")).to_have_text("Completed", timeout=8000)
    expect(page.get_by_text("Test stopped").first).to_be_visible()


def test_create_a_record_to_test_on_with_errors_kept(ui: UiServer, page: Page) -> None:
    campaign_id = _campaign(ui)
    ui.login(page, "marketer", next_path=f"/campaigns/{campaign_id}/test")
    page.get_by_label("Name", exact=True).fill("Katherine Johnson")
    page.get_by_label("Email", exact=True).fill("katherine@nasa")
    page.get_by_role("button", name="Create and launch the test").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Name", exact=True)).to_have_value("Katherine Johnson")
    page.get_by_label("Email", exact=True).fill("katherine@example.com")
    page.get_by_role("button", name="Create and launch the test").click()
    page.wait_for_url("**/tests/*")
    expect(page.get_by_text("Katherine Johnson")).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "test-page")


def test_viewer_sees_no_test_controls_and_forged_run_is_refused(ui: UiServer, page: Page) -> None:
    campaign_id = _campaign(ui)
    now = utcnow()
    from nurture.engine import testmode

    with ui.db.transaction() as s:
        contact = s.scalars(select(Participant.id)).first()
        assert contact is None
        res_id = records.create_record(session=s, model="contact", values={"name": "Viewer Target"}, now=now)
        pid = testmode.launch_test(s, campaign_id=campaign_id, res_id=res_id, now=now).id
        trace_id = s.scalars(select(Trace.id)).one()
    ui.login(page, "viewer", next_path=f"/tests/{pid}")
    expect(page.locator("#test-steps")).to_be_visible()
    # no email address: the campaign's filter does not select the record, and the page says so
    expect(page.locator("#test-audience-warning")).to_contain_text("does not match the campaign's filter")
    expect(page.get_by_role("button", name="Run")).to_have_count(0)
    expect(page.get_by_role("button", name="Stop the test")).to_have_count(0)
    token = page.evaluate("() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    response = page.request.post(ui.url(f"/tests/steps/{trace_id}/run"), headers={"X-CSRF-Token": token})
    assert response.status == 403
    with ui.db.read() as s:
        assert s.scalars(select(Trace.state)).one() == "scheduled"
