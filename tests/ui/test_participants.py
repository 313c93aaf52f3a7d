"""Screen 8: participants of a campaign (filters, pages), a participant's timeline, Cancel on a
scheduled step, Remove participant, the message as sent."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from nurture.campaign_templates import create_from_template
from nurture.campaigns import campaigns as cs
from nurture.engine.models import Participant
from nurture.worker.loop import tick
from tests.ui.conftest import UiServer, axe, count_sql, shot
from tests.ui.helpers_campaigns import bulk_contacts, csrf_of, past, running_campaign


def test_list_filters_and_pages(ui: UiServer, page: Page) -> None:
    bulk_contacts(ui.db, 60, now=past(3))
    cid, first, later = running_campaign(ui.db, now=past(2))
    ui.login(page, "viewer", next_path=f"/campaigns/{cid}/participants")
    expect(page.get_by_text("60 participants")).to_be_visible()
    rows = page.locator("table.participants tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text(re.compile(r"Person \d{4}\s*person\d+@example.com"))
    first_page = set(rows.locator("td:first-child a").all_inner_texts())
    expect(rows.first).to_contain_text("Tag as hot")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, "participants", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert axe(page) == []
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(10)
    second_page = set(rows.locator("td:first-child a").all_inner_texts())
    assert len(first_page | second_page) == 60  # keyset pages: no repeat, nobody missed
    page.get_by_role("button", name="First page").click()
    expect(rows).to_have_count(50)
    page.get_by_label("Activity").select_option(label="Follow-up tag")
    page.get_by_label("Step state").select_option("processed")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No participant matches these filters.")).to_be_visible()
    tick(ui.db, now=past(1))
    page.reload()
    expect(page.get_by_text("60 participants")).to_be_visible()
    page.get_by_label("Participant", exact=True).select_option("running")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("0 participants")).to_be_visible()
    page.goto(ui.url(f"/campaigns/{cid}/participants?test=only"))
    expect(page.get_by_role("heading", name=re.compile("^Tests"))).to_be_visible()


def test_timeline_cancel_and_remove(ui: UiServer, page: Page) -> None:
    bulk_contacts(ui.db, 3, now=past(3))
    cid, _, _ = running_campaign(ui.db, now=past(2))
    with ui.db.read() as s:
        pids = list(s.scalars(select(Participant.id).where(Participant.campaign_id == cid).order_by(Participant.id)))
    ui.login(page, "marketer", next_path=f"/campaigns/{cid}/participants/{pids[0]}")
    steps = page.get_by_role("list", name="Steps").locator("li.step")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("processed")
    expect(steps.nth(1)).to_contain_text("Scheduled for")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, "participant-timeline")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert axe(page) == []
    page.on("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Cancel the step Follow-up tag").click()
    expect(page.get_by_text("The step was canceled.")).to_be_visible()
    expect(steps.nth(1)).to_contain_text("Canceled by hand")
    expect(page.locator(".head-right .badge")).to_have_text("Completed")
    page.goto(ui.url(f"/campaigns/{cid}/participants/{pids[1]}"))
    page.get_by_role("button", name="Remove participant").click()
    expect(page.get_by_text("The participant was removed")).to_be_visible()
    expect(page.locator(".head-right .badge")).to_have_text("Removed")
    expect(steps.nth(1)).to_contain_text("Participant removed by hand")
    expect(page.get_by_role("button", name="Remove participant")).to_have_count(0)


def test_message_as_sent_is_linked_from_the_timeline(ui: UiServer, page: Page) -> None:
    with ui.db.transaction() as s:
        campaign = create_from_template(session=s, now=past(2), key="tag_hot_contacts")
        cid = campaign.id
        cs.start_campaign(session=s, now=past(2), campaign_id=cid)
    bulk_contacts(ui.db, 1, now=past(3), prefix="ada")
    tick(ui.db, now=past(2))
    tick(ui.db, now=past(1))
    with ui.db.read() as s:
        pid = s.scalar(select(Participant.id).where(Participant.campaign_id == cid))
    ui.login(page, "admin", next_path=f"/campaigns/{cid}/participants/{pid}")
    page.get_by_role("link", name="View the message as sent").click()
    expect(page.get_by_role("heading", level=1)).not_to_be_empty()
    frame = page.frame_locator("iframe.message-frame")
    expect(frame.locator("body")).to_contain_text("Ada")
    page.get_by_text("Raw source").click()
    expect(page.locator(".message-source pre")).to_contain_text("Subject:")
    shot(page, "participant-message")
    assert axe(page) == []


def _one_participant(ui: UiServer) -> tuple[int, int]:
    bulk_contacts(ui.db, 1, now=past(3))
    cid, _, _ = running_campaign(ui.db, now=past(2))
    with ui.db.read() as s:
        pid = s.scalar(select(Participant.id).where(Participant.campaign_id == cid))
    assert pid is not None
    return cid, pid


def test_viewer_sees_no_edit_controls_and_forged_writes_are_refused(ui: UiServer, page: Page) -> None:
    cid, pid = _one_participant(ui)
    ui.login(page, "viewer", next_path=f"/campaigns/{cid}/participants/{pid}")
    expect(page.get_by_role("list", name="Steps").locator("li.step")).to_have_count(2)
    expect(page.get_by_role("button", name="Remove participant")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Cancel"))).to_have_count(0)
    token = csrf_of(page)
    r = page.request.post(ui.url(f"/campaigns/{cid}/participants/{pid}/remove"), form={"csrf_token": token})
    assert r.status == 403


def test_forged_csrf_token_is_refused(ui: UiServer, page: Page) -> None:
    cid, pid = _one_participant(ui)
    ui.login(page, "admin", next_path=f"/campaigns/{cid}/participants/{pid}")
    page.locator("form[action$='/remove'] input[name=csrf_token]").evaluate("el => el.value = 'forged'")
    page.on("dialog", lambda d: d.accept())
    with page.expect_response(lambda r: r.url.endswith("/remove")) as info:
        page.get_by_role("button", name="Remove participant").click()
    assert info.value.status == 403


def test_list_statement_count_does_not_grow_with_participants(ui: UiServer, page: Page) -> None:
    bulk_contacts(ui.db, 10, now=past(3), prefix="few")
    few_id, _, _ = running_campaign(ui.db, now=past(2), name="Few")
    with ui.db.transaction() as s:
        cs.stop_campaign(session=s, now=past(2), campaign_id=few_id)
    bulk_contacts(ui.db, 990, now=past(3), prefix="many")
    many_id, _, _ = running_campaign(ui.db, now=past(2), name="Many")
    ui.login(page, "admin", next_path=f"/campaigns/{few_id}/participants")
    with count_sql(ui.db) as few:
        page.goto(ui.url(f"/campaigns/{few_id}/participants"))
    expect(page.get_by_text("10 participants")).to_be_visible()
    with count_sql(ui.db) as many:
        page.goto(ui.url(f"/campaigns/{many_id}/participants"))
    expect(page.get_by_text("1,000 participants")).to_be_visible()
    expect(page.locator("table.participants tbody tr")).to_have_count(50)
    assert len(few) == len(many), (few, many)
