"""Each campaign template does what its card promises: the real engine, a real SMTP server
on loopback, tracking hits on the web app and bounces through ``nurture inbound``
(SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from nurture.records import blacklists, mailing_lists
from nurture.records import models as m
from nurture.records import service as records
from nurture.worker.loop import tick
from tests.channels.email.integration.conftest import HOUR, T0, Env

from .helpers import (
    WEBSITE,
    add,
    bounce,
    click_mail,
    mails,
    message_to,
    open_mail,
    participants,
    running_worker,
    start_template,
    states,
    trace_of,
    wait_for,
)

DAY = timedelta(days=1)


def _list_id(env: Env, name: str) -> int:
    with env.db.read() as s:
        found = s.scalar(select(m.MailingList.id).where(m.MailingList.name == name))
        assert found is not None
        return int(found)


def _members(env: Env, list_name: str) -> list[str]:
    with env.db.read() as s:
        return list(
            s.scalars(
                select(m.MailingContact.email)
                .join(
                    m.MailingSubscription, m.MailingSubscription.contact_id == m.MailingContact.id
                )
                .join(m.MailingList, m.MailingList.id == m.MailingSubscription.list_id)
                .where(m.MailingList.name == list_name)
                .order_by(m.MailingContact.email)
            )
        )


def _tags(env: Env, model: type[m.Contact] | type[m.Lead], record_id: int) -> set[str]:
    with env.db.read() as s:
        record = s.get(model, record_id)
        assert record is not None
        return {t.name for t in record.tags}


def test_double_opt_in_confirms_a_new_subscriber_once(env: Env) -> None:
    cid, acts = start_template(env.db, "Double Opt-in")
    newsletter = _list_id(env, "Newsletter")
    tick(env.db, now=T0)

    # a new Newsletter subscriber, created through the record services while the campaign runs
    joined = T0 + timedelta(minutes=10)
    with env.db.transaction() as s:
        nora = records.create_record(
            session=s,
            model="mailing_contact",
            values={"name": "Nora", "email": "nora@example.org"},
            now=joined,
        )
        mailing_lists.subscribe(session=s, contact_id=nora, list_id=newsletter, now=joined)
        other = mailing_lists.get_or_create_mailing_list(session=s, name="Partners", now=joined)
        pat = records.create_record(
            session=s,
            model="mailing_contact",
            values={"name": "Pat", "email": "pat@example.org"},
            now=joined,
        )
        mailing_lists.subscribe(session=s, contact_id=pat, list_id=other, now=joined)
        blacklists.blacklist_email(session=s, email="bea@example.org", now=joined, reason="Asked")
        bea = records.create_record(
            session=s,
            model="mailing_contact",
            values={"name": "Bea", "email": "bea@example.org"},
            now=joined,
        )
        mailing_lists.subscribe(session=s, contact_id=bea, list_id=newsletter, now=joined)
    # enrolled at once (no tick), the confirmation scheduled one hour later; Bea's address
    # is blacklisted, so the filter ("not blacklisted") never enrols her
    assert participants(env.db, cid) == {nora: "running"}
    confirmation = trace_of(env.db, acts["Confirmation"], nora)
    assert confirmation.state == "scheduled" and confirmation.schedule_date == joined + HOUR

    tick(env.db, now=joined + timedelta(minutes=59))
    assert env.sink.received == []
    tick(env.db, now=joined + HOUR)
    assert mails(env) == [("nora@example.org", "Please confirm your subscription")]
    assert states(env.db, acts["Confirmation"]) == {nora: "processed"}  # no trace for Bea
    message = message_to(env, "nora@example.org")

    # the confirm button, clicked twice
    for minutes in (70, 90):
        env.at(joined + timedelta(minutes=minutes))
        location = click_mail(env, message)
        assert location.startswith(f"{WEBSITE}/newsletter/confirmed")
        tick(env.db, now=joined + timedelta(minutes=minutes))
        assert _members(env, "Confirmed contacts") == ["nora@example.org"]
    assert states(env.db, acts["Add to list"]) == {nora: "processed"}
    assert _members(env, "Newsletter") == ["bea@example.org", "nora@example.org"]
    assert participants(env.db, cid) == {nora: "completed"}


def test_prioritize_hot_leads_opening_sets_priority_3_within_a_second(env: Env) -> None:
    _cid, acts = start_template(env.db, "prioritize_hot_leads")
    hot = add(env.db, "lead", {"name": "Hot deal", "email": "hot@example.org"})
    cold = add(env.db, "lead", {"name": "Cold deal", "email": "cold@example.org"})
    won = add(env.db, "lead", {"name": "Old deal", "email": "won@example.org", "stage": "Won"})
    opp = add(
        env.db, "lead", {"name": "Opportunity", "email": "opp@example.org", "type": "opportunity"}
    )
    tick(env.db, now=T0)
    assert env.sink.received == []  # one hour after they enter
    tick(env.db, now=T0 + HOUR)
    assert sorted(to for to, _ in mails(env)) == ["cold@example.org", "hot@example.org"]
    assert set(states(env.db, acts["Send email"])) == {
        hot,
        cold,
    }  # not the Won lead nor the opportunity
    message = message_to(env, "hot@example.org")

    def priority(lead_id: int) -> int:
        with env.db.read() as s:
            lead = s.get(m.Lead, lead_id)
            assert lead is not None
            return int(lead.priority)

    env.at(T0 + 2 * HOUR)
    with running_worker(env.db, clock=lambda: env.clock[0]):
        open_mail(env, message)
        elapsed = wait_for(lambda: priority(hot) == 3, timeout=10)
    assert elapsed < 1.0, f"priority set {elapsed:.2f} s after the pixel hit"
    assert states(env.db, acts["Prioritize"]) == {hot: "processed", cold: "scheduled"}
    assert (priority(cold), priority(won), priority(opp)) == (0, 0, 0)


def test_welcome_flow_blacklists_and_unsubscribes_a_bounced_address(env: Env) -> None:
    _cid, acts = start_template(env.db, "welcome_flow")
    newsletter = _list_id(env, "Newsletter")
    with env.db.transaction() as s:
        subscribers = {}
        for name in ("eve", "fay"):
            contact = records.create_record(
                session=s,
                model="mailing_contact",
                values={"name": name.title(), "email": f"{name}@example.org"},
                now=T0,
            )
            mailing_lists.subscribe(session=s, contact_id=contact, list_id=newsletter, now=T0)
            subscribers[name] = contact
    tick(env.db, now=T0)
    assert sorted(mails(env)) == [
        ("eve@example.org", "Welcome to our newsletter, Eve"),
        ("fay@example.org", "Welcome to our newsletter, Fay"),
    ]
    bounce(env, trace_of(env.db, acts["Welcome"], subscribers["eve"]).id, now=T0 + HOUR)
    assert trace_of(env.db, acts["Welcome"], subscribers["eve"]).bounced_at == T0 + HOUR
    tick(env.db, now=T0 + HOUR)

    assert states(env.db, acts["Remove bounced address"]) == {
        subscribers["eve"]: "processed",
        subscribers["fay"]: "scheduled",
    }
    with env.db.read() as s:
        assert blacklists.is_email_blacklisted(session=s, email="eve@example.org")
        assert not blacklists.is_email_blacklisted(session=s, email="fay@example.org")
        (entry,) = blacklists.blacklist_history(session=s, kind="email", value="eve@example.org")
        assert (entry.reason, entry.source) == ("The welcome email bounced", "action")
    assert _members(env, "Newsletter") == ["fay@example.org"]


def test_schedule_calls_assigns_a_call_to_the_contacts_salesperson(env: Env) -> None:
    cid, acts = start_template(env.db, "Schedule Calls")
    with env.db.transaction() as s:
        sam = records.create_record(
            session=s, model="user", values={"login": "sam@acme.test", "name": "Sam"}, now=T0
        )
        lea = records.create_record(
            session=s, model="user", values={"login": "lea@acme.test", "name": "Lea"}, now=T0
        )
        client = records.create_record(
            session=s,
            model="contact",
            values={"name": "Client Co", "email": "buyer@client.example", "salesperson": sam},
            now=T0,
        )
    # leads created while the campaign runs: one for the existing contact (another
    # salesperson on the lead), one without a contact
    later = T0 + timedelta(minutes=5)
    lead = add(
        env.db, "lead", {"name": "Renewal", "contact": client, "salesperson": lea}, now=later
    )
    orphan = add(env.db, "lead", {"name": "Walk-in", "email": "walkin@example.org"}, now=later)
    assert participants(env.db, cid) == {lead: "running"}
    tick(env.db, now=later)
    assert states(env.db, acts["Schedule a call"]) == {lead: "processed"}
    with env.db.read() as s:
        calls = list(s.scalars(select(m.CrmActivity)))
        assert [(c.activity_type, c.res_model, c.res_id, c.user_id) for c in calls] == [
            ("call", "lead", lead, sam)
        ]
        assert calls[0].summary == "Call Client Co about Renewal"
        assert calls[0].due_date == later + DAY
    assert orphan not in participants(env.db, cid)
    assert env.sink.received == []


def test_commercial_prospection_branches_reach_the_right_leads(env: Env) -> None:
    cid, acts = start_template(env.db, "commercial_prospection")
    with env.db.transaction() as s:
        reps = {
            name: records.create_record(
                session=s, model="user", values={"login": f"{name}@acme.test", "name": name}, now=T0
            )
            for name in ("ann", "bob", "cid")
        }
    leads = {
        who: add(
            env.db,
            "lead",
            {"name": f"{who} deal", "email": f"{who}@example.org", "salesperson": reps[rep]},
        )
        for who, rep in (("clicker", "ann"), ("opener", "bob"), ("silent", "cid"))
    }
    tick(env.db, now=T0)
    assert sorted(mails(env)) == [
        (f"{who}@example.org", "Your free catalog is ready")
        for who in ("clicker", "opener", "silent")
    ]
    env.at(T0 + DAY)
    assert click_mail(env, message_to(env, "clicker@example.org")).startswith(f"{WEBSITE}/catalog")
    open_mail(env, message_to(env, "opener@example.org"))
    for day in (*range(1, 11), 31):  # day 31: the 30-day event window closes
        tick(env.db, now=T0 + day * DAY)

    clicker, opener, silent = leads["clicker"], leads["opener"], leads["silent"]
    # clicked → a call for the lead's salesperson, nobody else
    with env.db.read() as s:
        calls = [(c.activity_type, c.res_id, c.user_id) for c in s.scalars(select(m.CrmActivity))]
    assert calls == [("call", clicker, reps["ann"])]
    assert states(env.db, acts["Schedule a call"]) == {
        clicker: "processed",
        opener: "canceled",
        silent: "canceled",
    }
    # not opened in 7 days → Reminder; opened but not clicked in 3 days → Special offer
    followups = sorted(
        (to, subject) for to, subject in mails(env) if "catalog is ready" not in subject
    )
    assert followups == [
        ("opener@example.org", "A special offer, just for you"),
        ("silent@example.org", "Did you see your free catalog?"),
    ]
    assert trace_of(env.db, acts["Reminder"], silent).executed_at == T0 + 7 * DAY
    assert trace_of(env.db, acts["Special offer"], opener).executed_at == T0 + 3 * DAY
    assert states(env.db, acts["Reminder"]) == {
        clicker: "canceled",
        opener: "canceled",
        silent: "processed",
    }
    assert states(env.db, acts["Special offer"]) == {
        clicker: "canceled",
        opener: "processed",
        silent: "rejected",
    }
    assert _tags(env, m.Lead, opener) == {"Catalog opened"}
    assert _tags(env, m.Lead, silent) == set()
    assert set(participants(env.db, cid).values()) == {"completed"}


def test_tag_hot_contacts_tags_the_contact_who_clicks(env: Env) -> None:
    _cid, acts = start_template(env.db, "Tag Hot Contacts")
    alice = add(env.db, "contact", {"name": "Alice", "email": "alice@example.org"})
    bruno = add(env.db, "contact", {"name": "Bruno", "email": "bruno@example.org"})
    add(env.db, "contact", {"name": "No address"})
    tick(env.db, now=T0 + HOUR)
    assert sorted(mails(env)) == [
        ("alice@example.org", "Welcome, Alice!"),
        ("bruno@example.org", "Welcome, Bruno!"),
    ]
    env.at(T0 + 2 * HOUR)
    assert click_mail(env, message_to(env, "alice@example.org")).startswith(f"{WEBSITE}/shop")
    open_mail(env, message_to(env, "bruno@example.org"))  # opening is not enough
    tick(env.db, now=T0 + 2 * HOUR)
    assert _tags(env, m.Contact, alice) == {"Hot"}
    assert _tags(env, m.Contact, bruno) == set()
    assert states(env.db, acts["Tag Hot"]) == {alice: "processed", bruno: "scheduled"}
    with env.db.read() as s:
        assert s.scalar(select(func.count()).select_from(m.Tag).where(m.Tag.name == "Hot")) == 1
