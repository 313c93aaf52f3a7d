"""Demo data (``nurture demo``, and the first start of an embedded server).

A realistic, deterministic dataset (seeded random): users with roles, ~1,000 contacts in ten
countries with phone numbers valid for their country, tags and salespeople, ~200 leads in
every stage, a "Newsletter" list with ~300 subscribers (some opted out), an event with ~80
registrations, CRM activities and a few blacklisted addresses. Rows are written with
set-based inserts, so loading takes well under a second or two.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from nurture.clock import utcnow
from nurture.db import Database
from nurture.records import models as m
from nurture.records.blacklists import blacklist_email, blacklist_phone
from nurture.records.catalog import LEAD_STAGES
from nurture.records.csv_store import allocate_ids
from nurture.records.events import records_changed
from nurture.records.mailing_lists import get_or_create_mailing_list
from nurture.records.service import has_records
from nurture.records.tags import get_or_create_tags

SEED = 20261129
CONTACTS = 1000
LEADS = 200
SUBSCRIBERS = 300
REGISTRATIONS = 80
ADMIN_LOGIN = "admin@example.com"

TAGS = (
    "VIP",
    "Hot",
    "Newsletter reader",
    "Customer",
    "Prospect",
    "Partner",
    "Event attendee",
    "Cold",
)


@dataclass(frozen=True)
class _Country:
    code: str
    lang: str
    tz: str
    cities: tuple[str, ...]
    first: tuple[str, ...]
    last: tuple[str, ...]
    domain: str


COUNTRIES: tuple[_Country, ...] = (
    _Country("FR", "fr_FR", "Europe/Paris", ("Paris", "Lyon", "Lille", "Nantes", "Bordeaux"),
             ("Camille", "Léa", "Louis", "Hugo", "Chloé", "Élodie", "Julien", "Manon"),
             ("Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Girard", "Roux"), "orange.fr"),
    _Country("BE", "fr_BE", "Europe/Brussels", ("Brussels", "Antwerp", "Ghent", "Liège", "Namur"),
             ("Lucas", "Emma", "Noah", "Olivia", "Arthur", "Louise", "Jules"),
             ("Peeters", "Janssens", "Maes", "Jacobs", "Willems", "Claes"), "skynet.be"),
    _Country("DE", "de_DE", "Europe/Berlin", ("Berlin", "Munich", "Hamburg", "Cologne", "Leipzig"),
             ("Lukas", "Anna", "Felix", "Lena", "Jonas", "Sophie", "Maximilian"),
             ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Wagner"), "web.de"),
    _Country("GB", "en_GB", "Europe/London", ("London", "Manchester", "Leeds", "Bristol", "York"),
             ("Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack"),
             ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson"), "btinternet.com"),
    _Country("US", "en_US", "America/New_York", ("New York", "Boston", "Chicago", "Austin", "Seattle"),
             ("James", "Olivia", "Liam", "Emma", "Noah", "Mia", "Ethan"),
             ("Johnson", "Miller", "Davis", "Garcia", "Rodriguez", "Clark"), "gmail.com"),
    _Country("ES", "es_ES", "Europe/Madrid", ("Madrid", "Barcelona", "Valencia", "Seville", "Bilbao"),
             ("Lucía", "Hugo", "Martina", "Pablo", "Sofía", "Álvaro", "Daniel"),
             ("García", "Fernández", "González", "Rodríguez", "López", "Martínez"), "telefonica.es"),
    _Country("IT", "it_IT", "Europe/Rome", ("Rome", "Milan", "Naples", "Turin", "Florence"),
             ("Giulia", "Francesco", "Sofia", "Alessandro", "Aurora", "Lorenzo"),
             ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano"), "libero.it"),
    _Country("NL", "nl_NL", "Europe/Amsterdam", ("Amsterdam", "Rotterdam", "Utrecht", "Eindhoven"),
             ("Daan", "Emma", "Sem", "Julia", "Lucas", "Tess", "Finn"),
             ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser"), "ziggo.nl"),
    _Country("CA", "en_CA", "America/Toronto", ("Toronto", "Montreal", "Vancouver", "Ottawa"),
             ("Liam", "Charlotte", "William", "Chloé", "Benjamin", "Alice"),
             ("Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "MacDonald"), "rogers.com"),
    _Country("BR", "pt_BR", "America/Sao_Paulo", ("São Paulo", "Rio de Janeiro", "Curitiba", "Recife"),
             ("Miguel", "Helena", "Arthur", "Alice", "Heitor", "Laura", "Davi"),
             ("Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira"), "uol.com.br"),
)  # fmt: skip

COMPANIES = (
    "Acme Corp", "Globex", "Initech", "Umbrella", "Stark Industries", "Wayne Enterprises",
    "Hooli", "Vandelay Industries", "Soylent", "Tyrell", "Cyberdyne", "Wonka Industries",
)  # fmt: skip

USERS = (
    (ADMIN_LOGIN, "Administrator", "admin"),
    ("marc.demo@example.com", "Marc Demo", "marketer"),
    ("sophie.sales@example.com", "Sophie Laurent", "marketer"),
    ("tom.sales@example.com", "Tom Becker", "marketer"),
    ("ines.sales@example.com", "Inès Moreau", "marketer"),
    ("viewer@example.com", "Victor Viewer", "viewer"),
)
SALESPEOPLE = USERS[1:5]


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum())


def _phone(rng: random.Random, region: str, kind: int) -> str:
    """A number valid for ``region`` in E.164, varied from the region's example number."""
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        example = phonenumbers.example_number(region)
    if example is None:
        raise ValueError(f"no example phone number for {region}")
    digits = str(example.national_number)
    for _ in range(50):
        tail = "".join(rng.choice("0123456789") for _ in range(4))
        candidate = phonenumbers.PhoneNumber(
            country_code=example.country_code, national_number=int(digits[:-4] + tail)
        )
        candidate.italian_leading_zero = example.italian_leading_zero
        if phonenumbers.is_valid_number(candidate):
            return phonenumbers.format_number(candidate, PhoneNumberFormat.E164)
    return phonenumbers.format_number(example, PhoneNumberFormat.E164)


def _table(orm: Any) -> Table:
    return cast(Table, orm.__table__)


def _insert(conn: Connection, orm: Any, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` with pre-allocated ids; returns the ids."""
    table = _table(orm)
    ids = allocate_ids(conn, table, len(rows))
    for record_id, row in zip(ids, rows, strict=True):
        row["id"] = record_id
    if rows:
        conn.execute(insert(table), list(rows))
    return ids


def _users(session: Session, conn: Connection, now: datetime) -> dict[str, int]:
    existing = dict(session.execute(select(m.User.login, m.User.id)).tuples().all())
    rows: list[dict[str, Any]] = [
        {
            "login": login,
            "name": name,
            "email": login,
            "role": role,
            "password_hash": None,
            "active": True,
            "created_at": now,
        }
        for login, name, role in USERS
        if login not in existing
    ]
    for row, record_id in zip(rows, _insert(conn, m.User, rows), strict=True):
        existing[row["login"]] = record_id
    return existing


def load_demo(db: Database, now: datetime) -> dict[str, int]:
    """Load the demo dataset (in one transaction); returns how many rows of each kind."""
    rng = random.Random(SEED)
    with db.transaction() as session:
        conn = session.connection()
        users = _users(session, conn, now)
        sales_ids = [users[login] for login, _, _ in SALESPEOPLE]
        tag_ids = dict(zip(TAGS, get_or_create_tags(session=session, names=TAGS), strict=True))

        # Contacts -------------------------------------------------------------
        contacts: list[dict[str, Any]] = []
        contact_tags: list[tuple[int, list[str]]] = []
        for index in range(CONTACTS):
            country = COUNTRIES[index % len(COUNTRIES)]
            first, last = rng.choice(country.first), rng.choice(country.last)
            created = now - timedelta(days=rng.randint(0, 720), minutes=rng.randint(0, 1439))
            domain = rng.choice((country.domain, "example.com", "example.org"))
            email = f"{_ascii(first).lower()}.{_ascii(last).lower()}{index}@{domain}"
            has_mobile = rng.random() < 0.8
            contacts.append(
                {
                    "name": f"{first} {last}",
                    "email": None if rng.random() < 0.03 else email,
                    "phone": _phone(rng, country.code, PhoneNumberType.FIXED_LINE),
                    "phone_valid": True,
                    "mobile": _phone(rng, country.code, PhoneNumberType.MOBILE)
                    if has_mobile
                    else None,
                    "mobile_valid": True if has_mobile else None,
                    "company_name": rng.choice(COMPANIES) if rng.random() < 0.7 else None,
                    "country_code": country.code,
                    "city": rng.choice(country.cities),
                    "lang": country.lang,
                    "tz": country.tz,
                    "salesperson_id": rng.choice(sales_ids) if rng.random() < 0.6 else None,
                    "active": rng.random() > 0.04,
                    "created_at": created,
                    "updated_at": created,
                }
            )
            names = [t for t, p in zip(TAGS, (0.08, 0.1, 0.3, 0.25, 0.3, 0.05, 0.1, 0.1), strict=True) if rng.random() < p]  # fmt: skip
            contact_tags.append((index, names))
        contact_ids = _insert(conn, m.Contact, contacts)
        link_rows = [
            {"contact_id": contact_ids[i], "tag_id": tag_ids[name]}
            for i, names in contact_tags
            for name in names
        ]
        if link_rows:
            conn.execute(insert(m.contact_tag), link_rows)

        # Leads ----------------------------------------------------------------
        leads: list[dict[str, Any]] = []
        lead_tags: list[dict[str, int]] = []
        probabilities = {"New": 10.0, "Qualified": 30.0, "Proposition": 60.0, "Won": 100.0, "Lost": 0.0}  # fmt: skip
        for index in range(LEADS):
            stage = LEAD_STAGES[min(int(rng.random() ** 1.4 * len(LEAD_STAGES)), 4)]
            linked = rng.random() < 0.6
            position = rng.randrange(CONTACTS)
            contact = contacts[position]
            created = now - timedelta(days=rng.randint(0, 365), hours=rng.randint(0, 23))
            company = contact["company_name"] or rng.choice(COMPANIES)
            leads.append(
                {
                    "name": f"{rng.choice(('Website', 'Licences', 'Training', 'Support plan', 'Upgrade'))} for {company}",
                    "contact_id": contact_ids[position] if linked else None,
                    "email": contact["email"] if linked else f"lead{index}@{_ascii(company).lower()}.example.com",
                    "phone": contact["phone"] if linked else None,
                    "phone_valid": True if linked else None,
                    "country_code": contact["country_code"] if linked else None,
                    "type": "opportunity" if stage != "New" else "lead",
                    "stage": stage,
                    "expected_revenue": float(rng.randrange(10, 500) * 100),
                    "probability": probabilities[stage],
                    "priority": rng.choice((0, 0, 1, 1, 2, 3)),
                    "salesperson_id": rng.choice(sales_ids),
                    "active": stage != "Lost" or rng.random() < 0.5,
                    "created_at": created,
                    "updated_at": created,
                }
            )  # fmt: skip
        lead_ids = _insert(conn, m.Lead, leads)
        for lead_id in lead_ids:
            if rng.random() < 0.3:
                lead_tags.append({"lead_id": lead_id, "tag_id": tag_ids[rng.choice(("Hot", "VIP", "Cold"))]})  # fmt: skip
        if lead_tags:
            conn.execute(insert(m.lead_tag), lead_tags)

        # Newsletter -----------------------------------------------------------
        newsletter = get_or_create_mailing_list(session=session, name="Newsletter", now=now)
        with_email = [i for i, c in enumerate(contacts) if c["email"]]
        chosen = sorted(rng.sample(with_email, SUBSCRIBERS))
        mailing_rows = []
        for i in chosen:
            contact = contacts[i]
            mailing_rows.append(
                {
                    "name": contact["name"],
                    "email": contact["email"],
                    "phone": contact["mobile"],
                    "phone_valid": contact["mobile_valid"],
                    "company_name": contact["company_name"],
                    "country_code": contact["country_code"],
                    "active": True,
                    "created_at": contact["created_at"],
                    "updated_at": contact["created_at"],
                }
            )
        mailing_ids = _insert(conn, m.MailingContact, mailing_rows)
        subscriptions = []
        for mailing_id, row in zip(mailing_ids, mailing_rows, strict=True):
            opted_out = rng.random() < 0.12
            subscribed = row["created_at"]
            subscriptions.append(
                {
                    "contact_id": mailing_id,
                    "list_id": newsletter,
                    "opted_out": opted_out,
                    "subscribed_at": subscribed,
                    "unsubscribed_at": subscribed + timedelta(days=rng.randint(1, 60))
                    if opted_out
                    else None,
                }
            )
        _insert(conn, m.MailingSubscription, subscriptions)
        reader_links = [
            {"mailing_contact_id": i, "tag_id": tag_ids["Newsletter reader"]}
            for i in mailing_ids
            if rng.random() < 0.5
        ]
        if reader_links:
            conn.execute(insert(m.mailing_contact_tag), reader_links)

        # Event ----------------------------------------------------------------
        (event_id,) = _insert(
            conn,
            m.Event,
            [
                {
                    "name": "Nurture Experience 2027",
                    "date_begin": (now + timedelta(days=45)).replace(hour=9, minute=0, second=0, microsecond=0),
                    "date_end": (now + timedelta(days=46)).replace(hour=18, minute=0, second=0, microsecond=0),
                    "created_at": now - timedelta(days=30),
                }
            ],
        )  # fmt: skip
        registrations = []
        for i in sorted(rng.sample(with_email, REGISTRATIONS)):
            contact = contacts[i]
            state = rng.choices(("open", "draft", "done", "cancel"), (70, 10, 10, 10))[0]
            created = now - timedelta(days=rng.randint(0, 29))
            registrations.append(
                {
                    "event_id": event_id,
                    "name": contact["name"],
                    "email": contact["email"],
                    "phone": contact["mobile"] or contact["phone"],
                    "phone_valid": True,
                    "state": state,
                    "contact_id": contact_ids[i] if rng.random() < 0.75 else None,
                    "active": True,
                    "created_at": created,
                    "updated_at": created,
                }
            )
        registration_ids = _insert(conn, m.EventRegistration, registrations)

        # CRM activities and blacklists ---------------------------------------
        activities = []
        for lead_id, lead in zip(lead_ids, leads, strict=True):
            if lead["stage"] in ("Won", "Lost") or rng.random() < 0.5:
                continue
            activities.append(
                {
                    "activity_type": rng.choice(("todo", "call", "meeting")),
                    "summary": rng.choice(("Follow up", "Send quote", "Demo call", "Check budget")),
                    "note": None,
                    "user_id": lead["salesperson_id"],
                    "res_model": "lead",
                    "res_id": lead_id,
                    "due_date": now + timedelta(days=rng.randint(-5, 20)),
                    "done": False,
                    "created_at": now,
                }
            )
        _insert(conn, m.CrmActivity, activities)
        for i in rng.sample(with_email, 5):
            email = contacts[i]["email"]
            if email:
                blacklist_email(session=session, email=email, now=now, reason="Asked not to be contacted")  # fmt: skip
        blacklist_phone(session=session, number=contacts[0]["phone"], now=now, reason="Demo: opted out of SMS")  # fmt: skip

        for model, ids in (
            ("contact", contact_ids),
            ("lead", lead_ids),
            ("mailing_contact", mailing_ids),
            ("event_registration", registration_ids),
        ):
            records_changed(session, model=model, ids=ids, now=now)
    return {
        "user": len(users),
        "contact": len(contact_ids),
        "lead": len(lead_ids),
        "mailing_contact": len(mailing_ids),
        "event_registration": len(registration_ids),
        "crm_activity": len(activities),
    }


def add_subscribers(
    session: Session, *, rng: random.Random, times: Sequence[datetime], now: datetime
) -> list[int]:
    """New people signing up to the "Newsletter" list, one at each of ``times`` (their
    creation and subscription time); the record services' change notification (continuous
    enrolment) follows at ``now``. Returns the new mailing contacts' ids."""
    if not times:
        return []
    conn = session.connection()
    newsletter = get_or_create_mailing_list(session=session, name="Newsletter", now=now)
    ids = allocate_ids(conn, _table(m.MailingContact), len(times))
    rows: list[dict[str, Any]] = []
    for record_id, when in zip(ids, times, strict=True):
        country = rng.choice(COUNTRIES)
        first, last = rng.choice(country.first), rng.choice(country.last)
        domain = rng.choice((country.domain, "example.com", "example.net"))
        rows.append(
            {
                "id": record_id,
                "name": f"{first} {last}",
                "email": f"{_ascii(first).lower()}.{_ascii(last).lower()}.{record_id}@{domain}",
                "phone": None,
                "phone_valid": None,
                "company_name": rng.choice(COMPANIES) if rng.random() < 0.4 else None,
                "country_code": country.code,
                "active": True,
                "created_at": when,
                "updated_at": when,
            }
        )
    conn.execute(insert(_table(m.MailingContact)), rows)
    _insert(
        conn,
        m.MailingSubscription,
        [
            {
                "contact_id": contact_id,
                "list_id": newsletter,
                "opted_out": False,
                "subscribed_at": row["created_at"],
                "unsubscribed_at": None,
            }
            for contact_id, row in zip(ids, rows, strict=True)
        ],
    )
    records_changed(session, model="mailing_contact", ids=ids, now=now)
    return ids


def database_is_empty(db: Database) -> bool:
    with db.read() as session:
        return not has_records(session=session)


def load_demo_if_empty(db: Database, now: datetime | None = None) -> bool:
    """Load the demo dataset when the database holds no records; True when loaded."""
    if not database_is_empty(db):
        return False
    load_demo(db, now or utcnow())
    return True
