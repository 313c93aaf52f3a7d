"""Screen 5, the workflow tree: figures from engine-made history, add child per parent type,
add / edit / delete with confirmation, roles, CSRF, accessibility, statement count."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect
from sqlalchemy import select

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.campaigns.models import Activity
from nurture.channels.email import service as email_service
from nurture.channels.sms import service as sms_service
from nurture.clock import utcnow
from nurture.engine.models import Trace
from tests.reporting.history import History, make_history
from tests.ui.conftest import UiServer, axe, count_sql, shot


def _history(ui: UiServer) -> History:
    start = utcnow().replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=4)
    return make_history(ui.db, start=start)


def _card(page: Page, activity_id: int) -> object:
    return page.locator(f"#activity-{activity_id} > article")


def test_tree_shows_figures_of_a_campaign_with_history(ui: UiServer, page: Page) -> None:
    h = _history(ui)
    ui.login(page, "marketer", next_path=f"/campaigns/{h.campaign_id}/workflow")
    welcome = page.locator(f"#activity-{h.welcome} > article")
    expect(welcome.locator("h3")).to_have_text("Welcome email")
    expect(welcome.locator(".wf-trigger")).to_have_text("At start")
    expect(welcome.locator(".wf-subtitle")).to_have_text("Welcome {{ record.name }}")
    expect(welcome.locator(".wf-success strong")).to_have_text("6")
    expect(welcome.locator(".wf-rejected strong")).to_have_text("0")
    figures = welcome.locator(".wf-msg li")
    expect(figures).to_have_text([
        re.compile(r"Sent\s*6"), re.compile(r"Opened\s*3\s*50%"), re.compile(r"Clicked\s*1\s*16.7%"),
        re.compile(r"Replied\s*1\s*16.7%"), re.compile(r"Bounced\s*1\s*16.7%"),
    ])
    opened_link = welcome.get_by_role("link", name=re.compile("^Opened"))
    expect(opened_link).to_have_attribute(
        "href", f"/campaigns/{h.campaign_id}/participants?activity={h.welcome}&event=opened"
    )
    expect(welcome.locator(".wf-success")).to_have_attribute(
        "href", f"/campaigns/{h.campaign_id}/participants?activity={h.welcome}&state=processed"
    )
    # the 15-day bars: one day with the six sends
    bars = welcome.locator("svg.bars rect.bar-a")
    expect(bars).to_have_count(15)
    heights = [float(bars.nth(i).get_attribute("height") or 0) for i in range(15)]
    assert sum(1 for x in heights if x > 0) == 1
    # children indented under their parent, triggers in words
    tag = page.locator(f"#activity-{h.welcome} > ol.wf-children > #activity-{h.opened} > article")
    expect(tag.locator(".wf-trigger")).to_have_text("Opened after 2 hours")
    expect(tag.locator(".wf-subtitle")).to_have_text("Tag engaged")
    expect(tag.locator(".wf-msg")).to_have_count(0)  # an action has no message figures
    reminder = page.locator(f"#activity-{h.welcome} > ol > #activity-{h.reminder} > article")
    expect(reminder.locator(".wf-trigger")).to_have_text("Not opened within 2 days")
    paris = page.locator(f"#activity-{h.reminder} > ol > #activity-{h.paris} > article")
    expect(paris.locator(".wf-trigger")).to_have_text("1 hour after Reminder")
    expect(paris.locator(".wf-success strong")).to_have_text("1")
    expect(paris.locator(".wf-rejected strong")).to_have_text("1")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        shot(page, "workflow-tree")
        assert axe(page) == []
    # loaded as a fragment (the campaign form does this with htmx): no page around it
    response = page.request.get(ui.url(f"/campaigns/{h.campaign_id}/workflow"), headers={"HX-Request": "true"})
    assert response.status == 200
    assert response.text().lstrip().startswith("<section") and "<html" not in response.text()


def test_add_child_offers_only_the_triggers_of_the_parent_type(ui: UiServer, page: Page) -> None:
    now = utcnow()
    with ui.db.transaction() as s:
        cid = cs.create_campaign(session=s, now=now, name="Types", model="contact").id
        ids = {
            t: activity_service.add_activity(session=s, now=now, campaign_id=cid, name=f"A {t}", activity_type=t).id
            for t in ("email", "sms", "action")
        }
    ui.login(page, "admin", next_path=f"/campaigns/{cid}/workflow")
    expected = {
        "email": ["Another activity", "Opened", "Not opened", "Replied", "Not replied", "Clicked", "Not clicked", "Bounced"],
        "sms": ["Another activity", "Clicked", "Not clicked", "Bounced"],
        "action": ["Another activity"],
    }
    for kind, labels in expected.items():
        menu = page.locator(f"#activity-{ids[kind]} .wf-add-child")
        menu.locator("summary").click()
        expect(menu.locator("li a")).to_have_text(labels)
        menu.locator("summary").click()
    # a choice opens the dialog with the trigger and the parent filled in
    menu = page.locator(f"#activity-{ids['email']} .wf-add-child")
    menu.locator("summary").click()
    menu.get_by_role("link", name="Not opened", exact=True).click()
    expect(page.get_by_label("Trigger")).to_have_value("mail_not_open")
    expect(page.get_by_label("Parent activity")).to_have_value(str(ids["email"]))
    expect(page.get_by_label("Interval", exact=True)).to_have_value("1")
    expect(page.get_by_label("Interval unit")).to_have_value("days")


def test_add_edit_and_delete_activities(ui: UiServer, page: Page) -> None:
    now = utcnow()
    with ui.db.transaction() as s:
        cid = cs.create_campaign(session=s, now=now, name="Onboarding", model="contact").id
    ui.login(page, "marketer", next_path=f"/campaigns/{cid}/workflow")
    expect(page.get_by_text("No activity yet.")).to_be_visible()
    page.get_by_role("button", name="Add new activity").click()
    page.get_by_label("Name", exact=True).fill("Welcome")
    page.get_by_label("Subject").fill("Welcome aboard, {{ record.name }}")
    page.get_by_label("Interval", exact=True).fill("1")
    page.get_by_role("button", name="Save & close").click()
    page.wait_for_url(f"**/campaigns/{cid}/workflow")
    expect(page.get_by_text("Activity “Welcome” saved.")).to_be_visible()
    with ui.db.read() as s:
        (root,) = s.scalars(select(Activity).where(Activity.campaign_id == cid)).all()
        root_id = root.id
        template = email_service.template_for_activity(session=s, activity_id=root_id)
        assert template is not None and template.subject == "Welcome aboard, {{ record.name }}"
    card = page.locator(f"#activity-{root_id} > article")
    expect(card.locator(".wf-trigger")).to_have_text("At start after 1 hour")
    # add a child from the menu, then a grandchild
    card.locator(".wf-add-child summary").click()
    card.get_by_role("link", name="Clicked", exact=True).click()
    page.get_by_label("Name", exact=True).fill("Clicked: thank you")
    page.get_by_label("Subject").fill("Thanks for your interest")
    page.get_by_label("Interval", exact=True).fill("2")
    page.get_by_role("button", name="Save & close").click()
    page.wait_for_url(f"**/campaigns/{cid}/workflow")
    with ui.db.read() as s:
        child = s.scalars(select(Activity).where(Activity.parent_id == root_id)).one()
        child_id = child.id
        assert (child.trigger_type, child.interval_number, child.interval_unit) == ("mail_click", 2, "hours")
    expect(page.locator(f"#activity-{child_id} .wf-trigger")).to_have_text("Clicked after 2 hours")
    page.locator(f"#activity-{child_id} .wf-add-child summary").click()
    page.locator(f"#activity-{child_id}").get_by_role("link", name="Another activity", exact=True).click()
    page.get_by_label("Name", exact=True).fill("Follow-up SMS")
    page.get_by_role("radio", name="SMS").check()
    page.get_by_label("Text", exact=True).fill("Hi {{ record.name }}, thanks!")
    page.get_by_role("button", name="Save & close").click()
    page.wait_for_url(f"**/campaigns/{cid}/workflow")
    with ui.db.read() as s:
        grandchild = s.scalars(select(Activity).where(Activity.parent_id == child_id)).one()
        grandchild_id = grandchild.id
        sms = sms_service.template_for_activity(session=s, activity_id=grandchild_id)
        assert sms is not None and sms.body == "Hi {{ record.name }}, thanks!"
    # edit: rename the root, change its interval
    page.get_by_role("link", name="Edit Welcome").click()
    expect(page.get_by_label("Subject")).to_have_value("Welcome aboard, {{ record.name }}")
    page.get_by_label("Name", exact=True).fill("Welcome email")
    page.get_by_label("Interval", exact=True).fill("3")
    page.get_by_role("button", name="Save & close").click()
    page.wait_for_url(f"**/campaigns/{cid}/workflow")
    expect(page.locator(f"#activity-{root_id}-name")).to_have_text("Welcome email")
    expect(page.locator(f"#activity-{root_id} > article .wf-trigger")).to_have_text("At start after 3 hours")
    # delete the child: the confirmation names the consequence; dismissing keeps everything
    messages: list[str] = []

    def answer(dialog: object, accept: bool) -> None:
        messages.append(dialog.message)  # type: ignore[attr-defined]
        (dialog.accept if accept else dialog.dismiss)()  # type: ignore[attr-defined]

    page.once("dialog", lambda d: answer(d, False))
    page.get_by_role("button", name="Delete Clicked: thank you").click()
    expect(page.locator(f"#activity-{child_id}")).to_be_visible()
    assert "descendants and their scheduled traces go too" in messages[0]
    page.once("dialog", lambda d: answer(d, True))
    page.get_by_role("button", name="Delete Clicked: thank you").click()
    expect(page.get_by_text("Activity “Clicked: thank you” and its 1 descendant deleted.")).to_be_visible()
    expect(page.locator(f"#activity-{child_id}")).to_have_count(0)
    expect(page.locator(f"#activity-{grandchild_id}")).to_have_count(0)
    with ui.db.read() as s:
        assert [a.id for a in s.scalars(select(Activity).where(Activity.campaign_id == cid))] == [root_id]


def test_delete_removes_scheduled_traces_of_descendants(ui: UiServer, page: Page) -> None:
    h = _history(ui)
    with ui.db.read() as s:
        assert s.scalars(select(Trace.id).where(Trace.activity_id == h.paris)).first() is not None
    ui.login(page, "admin", next_path=f"/campaigns/{h.campaign_id}/workflow")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete Reminder").click()
    expect(page.get_by_text("Activity “Reminder” and its 1 descendant deleted.")).to_be_visible()
    with ui.db.read() as s:
        left = s.scalars(select(Trace.activity_id).where(Trace.activity_id.in_([h.reminder, h.paris]))).all()
        assert left == []


def test_viewer_sees_no_edit_controls_and_cannot_write(ui: UiServer, page: Page) -> None:
    h = _history(ui)
    ui.login(page, "viewer", next_path=f"/campaigns/{h.campaign_id}/workflow")
    expect(page.locator(f"#activity-{h.welcome} > article .wf-success strong")).to_have_text("6")
    expect(page.get_by_role("button", name="Add new activity")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("^Edit"))).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)
    expect(page.get_by_text("Add child activity")).to_have_count(0)
    shot(page, "workflow-tree-viewer")
    assert axe(page) == []
    token = page.evaluate("() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    for path in (f"/campaigns/{h.campaign_id}/activities/new", f"/campaigns/{h.campaign_id}/activities/{h.welcome}"):
        assert page.request.get(ui.url(path)).status == 403
    r = page.request.post(
        ui.url(f"/campaigns/{h.campaign_id}/activities/{h.welcome}/delete"), form={"csrf_token": token}
    )
    assert r.status == 403
    with ui.db.read() as s:
        assert s.get(Activity, h.welcome) is not None


def test_forged_csrf_token_is_refused(ui: UiServer, page: Page) -> None:
    h = _history(ui)
    ui.login(page, "admin", next_path=f"/campaigns/{h.campaign_id}/workflow")
    form = page.locator(f"form[action='/campaigns/{h.campaign_id}/activities/{h.paris}/delete']")
    form.locator("input[name=csrf_token]").evaluate("el => el.value = 'forged'")
    page.once("dialog", lambda d: d.accept())
    with page.expect_response(lambda r: r.url.endswith(f"/activities/{h.paris}/delete")) as info:
        form.get_by_role("button").click()
    assert info.value.status == 403
    with ui.db.read() as s:
        assert s.get(Activity, h.paris) is not None


def _workflow(ui: UiServer, name: str, size: int) -> int:
    """A running campaign of ``size`` activities (email, SMS, action in turn) with traces."""
    now = utcnow()
    with ui.db.transaction() as s:
        cid = cs.create_campaign(session=s, now=now, name=name, model="contact").id
        action = action_service.create_server_action(session=s, now=now, name=f"Tag {name}", model="contact", add_tags=["x"]).id
        parent: int | None = None
        for i in range(size):
            kind = ("email", "sms", "action")[i % 3]
            aid = activity_service.add_activity(
                session=s, now=now, campaign_id=cid, name=f"{name} {i}", activity_type=kind,
                trigger_type="activity" if parent else "begin", parent_id=parent,
                server_action_id=action if kind == "action" else None,
            ).id
            if kind == "email":
                email_service.create_template(session=s, now=now, activity_id=aid, subject=f"{name} {i}", body_html="<p>x</p>")
            elif kind == "sms":
                sms_service.create_template(session=s, now=now, activity_id=aid, body="Hello")
            parent = aid if i % 2 == 0 else parent
    return cid


def test_statement_count_does_not_grow_with_activities(ui: UiServer, page: Page) -> None:
    small, large = _workflow(ui, "Small", 3), _workflow(ui, "Large", 12)
    ui.login(page, "admin", next_path=f"/campaigns/{small}/workflow")
    counts = []
    for cid, size in ((small, 3), (large, 12)):
        with count_sql(ui.db) as statements:
            page.goto(ui.url(f"/campaigns/{cid}/workflow"))
        expect(page.locator(".wf-card")).to_have_count(size)
        counts.append(len(statements))
    assert counts[0] == counts[1], counts
