"""Screen 4: the filter builder (macro ``filter_builder``), through the Filter explorer page.

Rules are built by clicks in Chromium; #records is compared with the service's count of the
domain the builder submits; the code view and the rules stay in sync both ways; invalid code
shows the validator's message inline and keeps the rules; saving it is refused.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Locator, Page, expect

from nurture import audience
from nurture.clock import utcnow
from nurture.records import blacklists
from nurture.records.models import Contact, Lead, Tag
from tests.ui.conftest import UiServer, axe, count_sql, shot


@pytest.fixture
def people(ui: UiServer) -> UiServer:
    """Five active contacts and an archived one, three leads, one blacklisted address.

    ===== ================= ==== ======== =========== =======
    name  email             ctry tags     created     active
    ===== ================= ==== ======== =========== =======
    Ann   ann@gmail.com     FR   VIP,New  3 days ago  yes
    Ben   ben@example.org   BE   New      40 days ago yes (blacklisted)
    Cid   (none)            FR   -        100 days    yes
    Dee   dee@example.com   DE   VIP      1 day ago   yes
    Fay   fay@gmail.com     FR   -        10 days ago yes
    Eve   eve@mail.fr       FR   VIP      2 days ago  no
    ===== ================= ==== ======== =========== =======
    """
    now = utcnow()
    with ui.db.transaction() as s:
        vip, new = Tag(name="VIP"), Tag(name="New")
        s.add_all([vip, new, Tag(name="Partner")])
        rows = {}
        for name, email, country, tags, days, active in [
            ("Ann", "ann@gmail.com", "FR", [vip, new], 3, True),
            ("Ben", "ben@example.org", "BE", [new], 40, True),
            ("Cid", None, "FR", [], 100, True),
            ("Dee", "dee@example.com", "DE", [vip], 1, True),
            ("Fay", "fay@gmail.com", "FR", [], 10, True),
            ("Eve", "eve@mail.fr", "FR", [vip], 2, False),
        ]:
            created = now - timedelta(days=days)
            contact = Contact(name=name, email=email, country_code=country, tags=tags,
                              active=active, created_at=created, updated_at=created)  # fmt: skip
            s.add(contact)
            rows[name] = contact
        s.flush()
        for name, contact, stage in [
            ("Ann's deal", rows["Ann"], "Won"),
            ("Ben's deal", rows["Ben"], "New"),
            ("Dee's deal", rows["Dee"], "Qualified"),
        ]:
            s.add(Lead(name=name, contact=contact, email=contact.email, stage=stage,
                       created_at=now, updated_at=now))  # fmt: skip
        blacklists.blacklist_email(session=s, email="ben@example.org", now=now)
    return ui


def service_count(ui: UiServer, model: str, domain: Any) -> int:
    with ui.db.read() as s:
        return audience.count_matching(s, model, domain, now=utcnow())


def submitted(page: Page) -> str:
    """The value the surrounding form would receive (the one field named ``filter``)."""
    value = page.locator('.filter-builder input[name="filter"]').input_value()
    assert page.locator('[name="filter"]').count() == 1
    return value


def records_count(page: Page) -> Locator:
    return page.locator("[data-fb-count]")


def settled(page: Page) -> None:
    """Wait until #records is up to date with the rules."""
    page.wait_for_function(
        "() => !document.querySelector('.filter-builder').classList.contains('fb-counting')"
    )


def expect_count_matches_service(page: Page, ui: UiServer, model: str) -> int:
    settled(page)
    domain = json.loads(submitted(page))
    expected = service_count(ui, model, domain)
    expect(records_count(page)).to_have_text(f"{expected:,}")
    return expected


def rule(page: Page, number: str) -> Locator:
    return page.get_by_role("group", name=f"Rule {number}", exact=True)


def open_explorer(page: Page, ui: UiServer, model: str = "contact", domain: str = "") -> None:
    path = f"/filters/{model}"
    ui.login(page, "marketer", next_path=path)
    if domain:
        page.goto(ui.url(path + "?filter=" + quote(domain)))
    page.wait_for_selector(".fb-root")
    settled(page)


def test_three_rules_with_a_nested_branch_built_by_clicks(people: UiServer, page: Page) -> None:
    ui = people
    open_explorer(page, ui)
    expect(page.get_by_role("heading", name="Filter explorer")).to_be_visible()
    expect(records_count(page)).to_have_text("5")  # archived Eve is not counted
    expect(page.get_by_text("All records match")).to_be_visible()

    # rule 1: Email is set
    page.get_by_role("button", name="+ Add rule").click()
    rule(page, "1").get_by_label("Field of rule 1", exact=True).select_option(label="Email")
    rule(page, "1").get_by_label("Operator of rule 1", exact=True).select_option(label="is set")
    assert expect_count_matches_service(page, ui, "contact") == 4  # not Cid

    # rule 2: Country is equal to FR
    page.get_by_role("button", name="+ Add rule").last.click()
    rule(page, "2").get_by_label("Field of rule 2", exact=True).select_option(label="Country")
    rule(page, "2").get_by_label("Operator of rule 2", exact=True).select_option(label="is equal to")
    rule(page, "2").get_by_label("Value of rule 2", exact=True).fill("FR")
    expect(page.get_by_label("Match all or any of the rules", exact=True)).to_have_value("all")
    assert expect_count_matches_service(page, ui, "contact") == 2  # Ann, Fay

    # rule 3: a branch "any": Tags is VIP, or created less than 7 days ago
    page.get_by_role("button", name="+ Add branch").first.click()
    branch = page.get_by_role("group", name="Branch 3")
    expect(branch.get_by_label("Branch 3: match all or any of its rules", exact=True)).to_have_value("any")
    rule(page, "3.1").get_by_label("Field of rule 3.1", exact=True).select_option(label="Tags ›")
    picker = rule(page, "3.1").get_by_label("Search tags for rule 3.1", exact=True)
    picker.fill("vi")
    rule(page, "3.1").get_by_role("button", name="VIP").click()
    expect(rule(page, "3.1").get_by_role("button", name="Remove VIP")).to_be_visible()
    rule(page, "3.2").get_by_label("Field of rule 3.2", exact=True).select_option(label="Created at")
    expect(rule(page, "3.2").get_by_label("Value of rule 3.2: kind of date", exact=True)).to_have_value("relative")
    rule(page, "3.2").get_by_label("Value of rule 3.2: how many", exact=True).fill("5")
    assert expect_count_matches_service(page, ui, "contact") == 1  # Ann (VIP, 3 days)

    domain = json.loads(submitted(page))
    vip_id = domain[5][2][0]
    assert domain == [
        "&", "&", ["email", "is set", None], ["country_code", "=", "FR"],
        "|", ["tags", "in", [vip_id]], ["created_at", ">=", {"relative": "-5d"}],
    ]  # fmt: skip
    shot(page, "filter-builder-built")

    # switching the root to "any" widens the selection
    page.get_by_label("Match all or any of the rules", exact=True).select_option("any")
    assert expect_count_matches_service(page, ui, "contact") == 5
    page.get_by_label("Match all or any of the rules", exact=True).select_option("all")

    # deleting the branch and a rule
    page.get_by_role("button", name="Delete branch 3").click()
    assert expect_count_matches_service(page, ui, "contact") == 2
    page.get_by_role("button", name="Delete rule 2").click()
    assert expect_count_matches_service(page, ui, "contact") == 4
    expect(page.get_by_text("Match records with the following rule")).to_be_visible()
    expect(page.get_by_label("Match all or any of the rules", exact=True)).to_have_count(0)  # any needs 2


def test_code_view_and_rules_stay_in_sync(people: UiServer, page: Page) -> None:
    ui = people
    open_explorer(page, ui)
    page.get_by_text("Code editor").click()
    code = page.get_by_label("Domain")
    # code -> rules (Odoo syntax accepted)
    code.fill("[('email', '!=', False), ('tags.name', '=', 'VIP')]")
    expect(rule(page, "2").get_by_label("Field of rule 2", exact=True)).to_have_value("tags")
    expect(rule(page, "2").get_by_label("Tag field of rule 2", exact=True)).to_have_value("name")
    expect(rule(page, "2").get_by_label("Value of rule 2", exact=True)).to_have_value("VIP")
    expect(rule(page, "1").get_by_label("Operator of rule 1", exact=True)).to_have_value("is set")
    assert expect_count_matches_service(page, ui, "contact") == 2  # Ann, Dee
    assert json.loads(submitted(page)) == [
        "&", ["email", "is set", None], ["tags.name", "=", "VIP"],
    ]  # fmt: skip
    code.blur()  # leaving the code view writes it canonically
    expect(code).to_have_value(re.compile(r'^\[\n  "&",\n  \["email", "is set", null\]'))

    # rules -> code
    rule(page, "2").get_by_label("Operator of rule 2", exact=True).select_option(label="is not equal to")
    expect(code).to_have_value(re.compile(r'\["tags.name", "!=", "VIP"\]'))
    assert expect_count_matches_service(page, ui, "contact") == 2  # Ben, Fay
    shot(page, "filter-builder-code")


def test_invalid_code_shows_the_error_inline_and_keeps_the_rules(
    people: UiServer, page: Page
) -> None:
    ui = people
    open_explorer(page, ui, domain='[["country_code", "=", "FR"]]')
    expect(rule(page, "1").get_by_label("Value of rule 1", exact=True)).to_have_value("FR")
    page.get_by_text("Code editor").click()
    code = page.get_by_label("Domain")
    for text, message in [
        ("[('emial', '=', 'x')]", "emial: unknown field 'emial' on contact"),
        ("[('email', '>>', 'x')]", "email: unknown operator '>>'"),
        ("[('country_code', 'in', 'FR')]", "country_code: operator 'in' needs a list of values"),
        ("[('created_at', '>', 'soon')]", "'soon' is not a date and time"),
        ("[('email', '='", "neither JSON nor a Python literal"),
    ]:
        code.fill(text)
        expect(page.locator("[data-fb-code-error]")).to_contain_text(message)
        expect(code).to_have_attribute("aria-invalid", "true")
        # the rules are kept (the last valid filter), #records shows none
        expect(rule(page, "1").get_by_label("Value of rule 1", exact=True)).to_have_value("FR")
        expect(records_count(page)).to_have_text("–")
        assert submitted(page) == text  # saving submits what the code view shows
    shot(page, "filter-builder-invalid")
    assert axe(page) == []

    # a wrong value type typed in the rules: the rule is marked, the status names it
    code.fill('[["country_code", "=", "FR"]]')
    expect(page.locator("[data-fb-code-error]")).to_be_hidden()
    settled(page)
    page.get_by_role("button", name="+ Add rule").click()
    rule(page, "2").get_by_label("Field of rule 2", exact=True).select_option(label="ID")
    rule(page, "2").get_by_label("Value of rule 2", exact=True).fill("")
    expect(page.locator("[data-fb-status]")).to_contain_text("needs a whole number")
    expect(rule(page, "2")).to_have_class(re.compile("fb-rule-invalid"))

    # saving an invalid filter is refused with the error next to the builder
    code.fill("[('emial', '=', 'x')]")
    expect(page.locator("[data-fb-code-error]")).to_be_visible()
    page.get_by_role("button", name="Apply").click()
    alert = page.locator(".filter-builder .field-error")
    expect(alert).to_have_text("emial: unknown field 'emial' on contact (known fields: " + alert.inner_text().split("(known fields: ")[1])
    expect(page.get_by_label("Domain")).to_have_value("[('emial', '=', 'x')]")


def test_relation_sub_fields_selection_boolean_and_relative_dates(
    people: UiServer, page: Page
) -> None:
    ui = people
    open_explorer(page, ui, model="lead")
    expect(records_count(page)).to_have_text("3")
    page.get_by_role("button", name="+ Add rule").click()
    # contact > country
    rule(page, "1").get_by_label("Field of rule 1", exact=True).select_option(label="Contact ›")
    rule(page, "1").get_by_label("Contact field of rule 1", exact=True).select_option(label="Country")
    rule(page, "1").get_by_label("Operator of rule 1", exact=True).select_option(label="is equal to")
    rule(page, "1").get_by_label("Value of rule 1", exact=True).fill("FR")
    assert expect_count_matches_service(page, ui, "lead") == 1
    assert json.loads(submitted(page)) == [["contact.country_code", "=", "FR"]]
    # contact > tags > name
    rule(page, "1").get_by_label("Contact field of rule 1", exact=True).select_option(label="Tags ›")
    rule(page, "1").get_by_label("Tag field of rule 1", exact=True).select_option(label="Name")
    rule(page, "1").get_by_label("Operator of rule 1", exact=True).select_option(label="contains")
    rule(page, "1").get_by_label("Value of rule 1", exact=True).fill("vip")
    assert expect_count_matches_service(page, ui, "lead") == 2
    assert json.loads(submitted(page)) == [["contact.tags.name", "ilike", "vip"]]

    # selection: a drop-down, then checkboxes for "is in"
    page.get_by_role("button", name="+ Add rule").last.click()
    rule(page, "2").get_by_label("Field of rule 2", exact=True).select_option(label="Stage")
    rule(page, "2").get_by_label("Value of rule 2", exact=True).select_option("Won")
    assert expect_count_matches_service(page, ui, "lead") == 1
    rule(page, "2").get_by_label("Operator of rule 2", exact=True).select_option(label="is in")
    rule(page, "2").get_by_label("Qualified", exact=True).check()
    assert expect_count_matches_service(page, ui, "lead") == 2
    assert json.loads(submitted(page))[-1] == ["stage", "in", ["Qualified", "Won"]]
    page.set_viewport_size({"width": 1280, "height": 900})
    shot(page, "filter-builder-lead")

    # boolean on contacts, and a date relative to now or exact
    page.goto(ui.url("/filters/contact"))
    page.wait_for_selector(".fb-root")
    page.get_by_role("button", name="+ Add rule").click()
    rule(page, "1").get_by_label("Field of rule 1", exact=True).select_option(label="Blacklisted")
    expect(rule(page, "1").get_by_label("Value of rule 1", exact=True)).to_have_value("true")
    assert expect_count_matches_service(page, ui, "contact") == 1  # Ben
    rule(page, "1").get_by_label("Value of rule 1", exact=True).select_option("false")
    assert expect_count_matches_service(page, ui, "contact") == 4
    assert json.loads(submitted(page)) == [["is_blacklisted", "=", False]]

    rule(page, "1").get_by_label("Field of rule 1", exact=True).select_option(label="Created at")
    rule(page, "1").get_by_label("Operator of rule 1", exact=True).select_option(label="is after")
    rule(page, "1").get_by_label("Value of rule 1: how many", exact=True).fill("2")
    rule(page, "1").get_by_label("Value of rule 1: unit", exact=True).select_option("weeks")
    assert expect_count_matches_service(page, ui, "contact") == 3  # Ann, Dee, Fay
    assert json.loads(submitted(page)) == [["created_at", ">", {"relative": "-2w"}]]
    rule(page, "1").get_by_label("Value of rule 1: kind of date", exact=True).select_option("date")
    day = (utcnow() - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")
    rule(page, "1").get_by_label("Value of rule 1 (UTC)", exact=True).fill(day)
    assert expect_count_matches_service(page, ui, "contact") == 2  # Ann, Dee
    assert json.loads(submitted(page)) == [["created_at", ">", day + ":00"]]


def test_selected_records_dialog(people: UiServer, page: Page) -> None:
    ui = people
    open_explorer(page, ui, domain="[('email', 'ilike', 'gmail')]")
    expect(records_count(page)).to_have_text("2")
    page.locator("[data-fb-records]").click()
    dialog = page.get_by_role("dialog", name="Selected records")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("2 contacts match this filter.")
    rows = dialog.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Fay")  # newest first
    expect(rows.first).to_contain_text("fay@gmail.com")
    expect(rows.nth(1)).to_contain_text("ann@gmail.com")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 800})
        shot(page, "filter-builder-records")
        assert axe(page) == []
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def _post(page: Page, ui: UiServer, path: str, form: dict[str, str], csrf: bool = True) -> Any:
    token = json.loads(page.locator("body").get_attribute("hx-headers") or "{}")["X-CSRF-Token"]
    headers = {"X-CSRF-Token": token} if csrf else {}
    return page.request.post(ui.url(path), form=form, headers=headers)


def test_base_domain_is_anded_and_writes_need_the_csrf_token(
    people: UiServer, page: Page
) -> None:
    ui = people
    open_explorer(page, ui)
    form = {"domain": "[('country_code', '=', 'FR')]", "base_domain": '[["tags.name", "=", "VIP"]]'}
    r = _post(page, ui, "/ui/filters/contact/count", form)
    assert r.ok and r.json() == {"count": 1}  # Ann (Eve is archived)
    r = _post(page, ui, "/ui/filters/contact/count", {**form, "include_archived": "true"})
    assert r.json() == {"count": 2}
    r = _post(page, ui, "/ui/filters/contact/records", form)
    assert r.ok and "Ann" in r.text() and "Fay" not in r.text()
    r = _post(page, ui, "/ui/filters/contact/count", {"domain": "[('tags.nme', '=', 'x')]"})
    assert r.status == 422
    assert r.json()["error"]["field"] == "tags.nme"
    assert "unknown field 'nme' on tag" in r.json()["error"]["message"]
    r = _post(page, ui, "/ui/filters/contact/count", form, csrf=False)
    assert r.status == 403
    assert page.request.get(ui.url("/ui/filters/tag/fields")).status == 404  # not a target
    r = page.request.get(ui.url("/ui/filters/contact/fields?path=email"))
    assert r.status == 422 and "not a relation" in r.json()["error"]["message"]
    r = page.request.get(ui.url("/ui/filters/lead/fields?path=contact.tags"))
    assert r.json()["model"] == "tag"
    assert [f["name"] for f in r.json()["fields"]] == ["id", "name", "color"]
    r = page.request.get(ui.url("/ui/filters/contact/related?path=tags&q=vi"))
    assert [c["label"] for c in r.json()] == ["VIP"]
    r = page.request.get(ui.url("/ui/filters/lead/related?path=contact&q=e"))
    assert [c["label"] for c in r.json()] == ["Dee", "Ben"]  # name or email, newest first
    r = page.request.get(ui.url("/ui/filters/contact/related?path=salesperson&q="))
    assert r.status == 403 and "may not list user records" in r.json()["error"]["message"]


def test_records_dialog_statements_do_not_grow_with_rows(people: UiServer, page: Page) -> None:
    ui = people
    open_explorer(page, ui)

    def statements() -> int:
        with count_sql(ui.db) as sql:
            r = _post(page, ui, "/ui/filters/contact/records", {"domain": "[]"})
            assert r.ok
        return len(sql)

    few = statements()
    now = utcnow()
    with ui.db.transaction() as s:
        s.add_all(
            Contact(name=f"Bulk {i}", email=f"bulk{i}@example.com", created_at=now, updated_at=now)
            for i in range(1000)
        )
    assert statements() == few


def test_layout_at_390_and_1280_is_usable_and_accessible(people: UiServer, page: Page) -> None:
    ui = people
    domain = (
        "['&', ('email', '!=', False), '|', ('tags.name', '=', 'VIP'), "
        "('create_date', '>=', {'relative': '-7d'})]"
    ).replace("create_date", "created_at")
    open_explorer(page, ui, domain=domain)
    expect(rule(page, "2.1")).to_be_visible()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        expect(rule(page, "2.2").get_by_label("Value of rule 2.2: how many", exact=True)).to_be_visible()
        overflow = page.evaluate("() => document.documentElement.scrollWidth")
        assert overflow <= width, f"horizontal scroll at {width}px ({overflow}px)"
        for number in ("1", "2.1", "2.2"):
            box = rule(page, number).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        shot(page, "filter-builder")
        assert axe(page) == []
    # keyboard: the add button is reachable and works without a mouse
    page.get_by_role("button", name="+ Add rule").last.focus()
    page.keyboard.press("Enter")
    expect(rule(page, "3")).to_be_visible()


def test_macro_contract_one_field_error_base_domain_and_read_only() -> None:
    """The macro other screens call: one field named ``name`` holding the domain, the error
    shown when its field is ``name``, the optional parameters passed to the script."""
    from nurture.web.ui.render import FieldError, environment

    template = environment().from_string(
        '{% from "ui/filters/_builder.html" import filter_builder %}'
        "{{ filter_builder(name='activity_filter', model='lead', domain=domain, error=error,"
        " base_domain=base, label='Activity filter', include_archived=True, readonly=True) }}"
    )
    html = template.render(
        domain='[["stage", "=", "Won"]]',
        error=FieldError(field="activity_filter", message="stage: 'Wonn' is not a value of Stage"),
        base=json.dumps([["email", "!=", False]]),
    )
    assert html.count(' name="activity_filter"') == 1
    assert "[[&#34;stage&#34;, &#34;=&#34;, &#34;Won&#34;]]" in html
    assert 'data-base-domain="[[&#34;email&#34;, &#34;!=&#34;, false]]"' in html
    assert 'data-include-archived="true"' in html and 'data-readonly="true"' in html
    assert "stage: &#39;Wonn&#39; is not a value of Stage" in html and 'role="alert"' in html
    other = template.render(domain="[]", error=FieldError(field="name", message="x"), base=None)
    assert 'role="alert">x' not in other and 'data-base-domain=""' in other
