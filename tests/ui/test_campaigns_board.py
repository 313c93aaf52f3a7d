"""Screen 2: the campaigns board (kanban by state, search, sparklines, template cards)."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from nurture.clock import utcnow
from tests.ui.conftest import UiServer, axe, count_sql, shot
from tests.ui.helpers_campaigns import (
    bulk_campaigns,
    bulk_contacts,
    csrf_of,
    past,
    running_campaign,
)


def test_no_campaign_shows_the_six_templates_and_a_card_creates_one(ui: UiServer, page: Page) -> None:
    ui.login(page, "marketer")
    expect(page.get_by_role("heading", name="Start your first campaign")).to_be_visible()
    cards = page.locator(".tpl-card")
    expect(cards).to_have_count(6)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, "board-templates")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert axe(page) == []
    page.get_by_role("button", name="Use this template: Double Opt-in").click()
    page.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    expect(page.get_by_label("Campaign name")).to_have_value("Double Opt-in")
    expect(page.get_by_text("was created from its template")).to_be_visible()
    page.goto(ui.url("/campaigns"))
    expect(page.locator(".col-draft .camp-card")).to_have_count(1)


def test_board_groups_by_state_with_figures_and_searches_as_you_type(ui: UiServer, page: Page) -> None:
    bulk_contacts(ui.db, 40, now=past(4))
    running_campaign(ui.db, now=past(3))
    bulk_campaigns(ui.db, 2, now=utcnow(), prefix="Autumn newsletter")
    running_campaign(ui.db, now=past(1), name="Lead nurturing")
    ui.login(page, "admin")
    board = page.locator("#board")
    expect(page.locator(".col-running .camp-card")).to_have_count(3)  # 2 engine-run + bulk #1
    card = page.locator(".camp-card", has_text="Spring welcome")
    # the second campaign's tick ran the first one's follow-up too: all 40 completed
    expect(card.locator(".figure").nth(1)).to_have_text("40 completed")
    expect(card).to_contain_text("Contact")
    expect(card.locator("svg.sparkline")).to_have_count(1)
    expect(page.get_by_role("button", name="New campaign")).to_be_visible()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, "board")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert axe(page) == []
    search = page.get_by_label("Search campaigns by name")
    search.fill("autumn")
    expect(board.locator(".camp-card")).to_have_count(2)
    assert "q=autumn" in page.url
    search.fill("zzz nothing")
    expect(page.get_by_role("heading", name="No campaign matches “zzz nothing”")).to_be_visible()
    expect(page.locator(".tpl-card")).to_have_count(6)
    shot(page, "board-no-match")
    page.goto(ui.url("/campaigns?q=Spring"))
    expect(page.locator(".camp-card")).to_have_count(1)
    expect(page.get_by_label("Search campaigns by name")).to_have_value("Spring")


def test_processed_series_reaches_the_sparkline(ui: UiServer, page: Page) -> None:
    bulk_contacts(ui.db, 3, now=past(4))
    running_campaign(ui.db, now=past(2))
    ui.login(page, "viewer")
    title = page.locator(".camp-card svg.sparkline title").text_content() or ""
    values = [int(v) for v in title.split(":")[1].split(",")]
    assert len(values) == 15 and values[-3] == 3  # the first step, two days ago
    from nurture.worker.loop import tick

    tick(ui.db, now=utcnow() - timedelta(days=1))
    page.reload()
    title = page.locator(".camp-card svg.sparkline title").text_content() or ""
    values = [int(v) for v in title.split(":")[1].split(",")]
    assert len(values) == 15 and values[-2] == 3  # the follow-up, yesterday


def test_viewer_sees_no_edit_controls_and_forged_writes_are_refused(ui: UiServer, page: Page) -> None:
    ui.login(page, "viewer")
    expect(page.locator(".tpl-card")).to_have_count(6)
    expect(page.get_by_role("button", name="New campaign")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Use this template"))).to_have_count(0)
    token = csrf_of(page)
    r = page.request.post(ui.url("/campaigns/from-template/double_opt_in"), form={"csrf_token": token})
    assert r.status == 403
    assert page.request.get(ui.url("/campaigns/new")).status == 403
    page.goto(ui.url("/campaigns"))
    expect(page.locator(".tpl-card")).to_have_count(6)  # nothing was created


def test_forged_csrf_token_is_refused(ui: UiServer, page: Page) -> None:
    ui.login(page, "marketer")
    page.locator("form[action='/campaigns/from-template/welcome_flow'] input[name=csrf_token]").evaluate(
        "el => el.value = 'forged'"
    )
    with page.expect_response(lambda r: r.url.endswith("/from-template/welcome_flow")) as info:
        page.get_by_role("button", name="Use this template: Welcome Flow").click()
    assert info.value.status == 403


def test_board_statement_count_does_not_grow_with_campaigns(ui: UiServer, page: Page) -> None:
    ui.login(page, "admin")
    bulk_campaigns(ui.db, 10, now=utcnow(), prefix="Few")
    with count_sql(ui.db) as few:
        page.goto(ui.url("/campaigns"))
    expect(page.locator(".camp-card")).to_have_count(10)
    bulk_campaigns(ui.db, 990, now=utcnow(), prefix="Many")
    with count_sql(ui.db) as many:
        page.goto(ui.url("/campaigns"))
    expect(page.locator(".camp-card")).to_have_count(1000)
    assert len(few) == len(many), (few, many)
