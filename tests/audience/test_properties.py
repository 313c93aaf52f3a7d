"""Property: for any valid domain and any records, SQL and Python evaluation agree.

Random contacts (unset values, mixed case, LIKE wildcards and non-ASCII letters in text,
archived or not, random tags and salesperson, phone numbers) with random email and phone
blacklists (active and lifted entries, some matching the contacts' own values) and random
domains over scalars, ``tags.name``, ``tags``, ``salesperson.name``, ``salesperson.email``,
``salesperson``, and the computed ``is_blacklisted`` / ``phone_blacklisted``, nested with
``&``, ``|``, ``!`` and implicit AND. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from nurture.audience import compile_domain, evaluate, validate_domain
from nurture.db import Database
from nurture.records.models import Contact, EmailBlacklist, Lead, PhoneBlacklist, Tag, User

NOW = datetime(2026, 3, 15, 12, 0, 0)
ALPHABET = "aAÉé_%\\"
TAG_NAMES = ["VIP", "vip", "New", "a_b", "Ab%"]
USER_NAMES = ["Bob", "bob", "Zoë", "Al"]
PHONES = ["+33612345678", "+32470123456", "+4930901820"]
EXTRA_EMAILS = ["", "x@y.test", "aa"]

texts = st.text(alphabet=ALPHABET, max_size=3)
maybe_texts = st.none() | texts
codes = st.sampled_from([None, "", "FR", "fr", "BE", "F%", "é"])
moments = st.integers(min_value=-40 * 24, max_value=40 * 24).map(lambda h: NOW + timedelta(hours=h))

CHAR_OPS = ["=", "!=", "in", "not in", "like", "not like", "ilike", "not ilike", "=like",
            "=ilike", "<", "<=", ">", ">=", "is set", "is not set"]  # fmt: skip
TEXT_PATHS = ["name", "email", "city", "country_code", "tags.name", "salesperson.name",
              "salesperson.email"]  # fmt: skip


def _pattern_ok(text: str) -> bool:
    return (len(text) - len(text.rstrip("\\"))) % 2 == 0


@st.composite
def text_leaves(draw: st.DrawFn, pool: tuple[str, ...]) -> list[Any]:
    path = draw(st.sampled_from(TEXT_PATHS))
    op = draw(st.sampled_from(CHAR_OPS))
    # Values close to the records' own: the same text, its other case, a piece of it.
    known = st.sampled_from(pool)
    near = (
        texts
        | known
        | known.map(str.swapcase)
        | st.tuples(known, st.integers(0, 3), st.integers(0, 3)).map(lambda t: t[0][t[1] : t[1] + t[2] + 1])
    )  # fmt: skip
    value: Any
    if op in ("in", "not in"):
        value = draw(st.lists(st.none() | near, max_size=3))
    elif op in ("is set", "is not set"):
        value = None
    elif op in ("=like", "=ilike"):
        value = draw(near.filter(_pattern_ok))
    elif op in ("=", "!="):
        value = draw(st.just(False) | near)
    else:
        value = draw(near)
    return [path, op, value]


@st.composite
def other_leaves(draw: st.DrawFn) -> list[Any]:
    kind = draw(
        st.sampled_from(
            ["active", "created_at", "id", "tags", "salesperson", "is_blacklisted",
             "phone_blacklisted"]
        )
    )  # fmt: skip
    if kind in ("active", "is_blacklisted", "phone_blacklisted"):
        op = draw(st.sampled_from(["=", "!=", "is set", "is not set"]))
        value = draw(st.booleans() | st.sampled_from([0, 1]))
        return [kind, op, None if "set" in op else value]
    if kind == "created_at":
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "is set", "is not set"]))
        value: Any = draw(
            moments.map(lambda m: m.isoformat())
            | st.builds(lambda n, u: {"relative": f"{n}{u}"},
                        st.integers(-30, 30), st.sampled_from("hdwm"))
        )  # fmt: skip
        return ["created_at", op, None if "set" in op else value]
    if kind == "id":
        op = draw(st.sampled_from(["=", "!=", "<", ">=", "in", "not in"]))
        if op in ("in", "not in"):
            return ["id", op, draw(st.lists(st.integers(0, 8), max_size=3))]
        return ["id", op, draw(st.integers(0, 8))]
    relation = draw(st.sampled_from(["tags", "salesperson"]))
    op = draw(st.sampled_from(["is set", "is not set", "=", "!=", "ilike", "not in"]))
    if op in ("is set", "is not set"):
        return [relation, op, None]
    names = TAG_NAMES if relation == "tags" else USER_NAMES
    if op == "not in":
        return [relation, op, draw(st.lists(st.sampled_from(names), max_size=2))]
    return [relation, op, draw(st.sampled_from(names))]


def _extend(children: st.SearchStrategy[list[Any]]) -> st.SearchStrategy[list[Any]]:
    return (
        st.tuples(st.sampled_from(["&", "|"]), children, children).map(
            lambda t: [t[0], *t[1], *t[2]]
        )
        | children.map(lambda c: ["!", *c])
        | st.tuples(children, children).map(lambda t: [*t[0], *t[1]])  # implicit AND
    )


def domains(pool: tuple[str, ...]) -> st.SearchStrategy[list[Any]]:
    leaves = text_leaves(pool) | other_leaves()
    return st.recursive(leaves.map(lambda leaf: [leaf]), _extend, max_leaves=6)


def _text_pool(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    found = {v for row in rows for k, v in row.items() if isinstance(v, str) and k != "name"}
    found |= {row["name"] for row in rows}
    return tuple(sorted(found | set(TAG_NAMES) | set(USER_NAMES)))


@st.composite
def contact_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    return draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "name": texts,
                    "email": maybe_texts,
                    "city": maybe_texts,
                    "country_code": codes,
                    "phone": st.none() | st.just("") | st.sampled_from(PHONES),
                    "mobile": st.none() | st.sampled_from(PHONES),
                    "active": st.booleans(),
                    "created_at": moments,
                    "salesperson": st.none() | st.integers(0, len(USER_NAMES) - 1),
                    "tags": st.sets(st.integers(0, len(TAG_NAMES) - 1), max_size=3),
                }
            ),
            min_size=1,
            max_size=12,
        )
    )


@st.composite
def blacklists(
    draw: st.DrawFn, rows: list[dict[str, Any]]
) -> tuple[dict[str, bool], dict[str, bool]]:
    """(email -> active, number -> active): entries for some of the rows' own values (as
    stored, or in another case, which must not match) and for values nobody has."""
    emails = sorted({r["email"] for r in rows if r["email"]} | set(EXTRA_EMAILS))
    candidates = st.sampled_from(emails) | st.sampled_from(emails).map(str.swapcase)
    return (
        draw(st.dictionaries(candidates, st.booleans(), max_size=4)),
        draw(st.dictionaries(st.sampled_from(PHONES), st.booleans(), max_size=3)),
    )


def _block(session: Any, blocked: tuple[dict[str, bool], dict[str, bool]]) -> None:
    """Blacklist rows written as stored (lifted entries: ``active`` false)."""
    emails, phones = blocked
    session.add_all(
        EmailBlacklist(email=email, active=active, created_at=NOW, updated_at=NOW)
        for email, active in emails.items()
    )
    session.add_all(
        PhoneBlacklist(number=number, active=active, created_at=NOW, updated_at=NOW)
        for number, active in phones.items()
    )


NO_BLACKLIST: tuple[dict[str, bool], dict[str, bool]] = ({}, {})


def _check(
    database: Database,
    rows: list[dict[str, Any]],
    domain_list: list[list[Any]],
    blocked: tuple[dict[str, bool], dict[str, bool]] = NO_BLACKLIST,
) -> None:
    with database.sessions() as session, session.begin():
        _block(session, blocked)
        users = [
            User(login=f"u{i}-{name}", name=name, email=None if i % 2 else f"{name}@x.test",
                 created_at=NOW)
            for i, name in enumerate(USER_NAMES)
        ]  # fmt: skip
        tags = [Tag(name=name) for name in TAG_NAMES]
        session.add_all([*users, *tags])
        contacts = []
        for row in rows:
            values = dict(row)
            salesperson = values.pop("salesperson")
            tag_indexes = values.pop("tags")
            contact = Contact(
                **values,
                updated_at=NOW,
                salesperson=None if salesperson is None else users[salesperson],
                tags=[tags[i] for i in sorted(tag_indexes)],
            )
            contacts.append(contact)
        session.add_all(contacts)
        session.flush()
        ids = [c.id for c in contacts]
        for domain in domain_list:
            canonical = validate_domain("contact", domain)
            assert validate_domain("contact", canonical) == canonical  # idempotent
            assert json.loads(json.dumps(canonical)) == canonical  # plain JSON
            condition = compile_domain("contact", domain, now=NOW)
            in_sql = set(session.scalars(select(Contact.id).where(condition, Contact.id.in_(ids))))
            in_python = {c.id for c in contacts if evaluate("contact", domain, c, now=NOW)}
            assert in_sql == in_python, (canonical, rows)
            # The canonical form means the same as what was written.
            assert in_python == {
                c.id for c in contacts if evaluate("contact", canonical, c, now=NOW)
            }
        session.rollback()


@settings(
    max_examples=int(os.environ.get("NURTURE_HYPOTHESIS_EXAMPLES", "70")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=contact_rows(), data=st.data())
def test_sql_and_python_evaluation_agree(
    database: Database, rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    domain_list = data.draw(st.lists(domains(_text_pool(rows)), min_size=1, max_size=8))
    _check(database, rows, domain_list, data.draw(blacklists(rows)))


TEXT_OPS = ["=", "!=", "like", "not like", "ilike", "not ilike", "=like", "=ilike", "<", ">="]


@settings(
    max_examples=int(os.environ.get("NURTURE_HYPOTHESIS_EXAMPLES", "70")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    cities=st.lists(
        st.none() | st.text(alphabet="aAÉéİı_%\\", max_size=4), min_size=1, max_size=10
    ),
    data=st.data(),
)
def test_text_operators_agree_on_case_wildcards_and_non_ascii_letters(
    database: Database, cities: list[str | None], data: st.DataObject
) -> None:
    pool = tuple(c for c in cities if c) or ("a",)
    known = st.sampled_from(pool)
    values = known | known.map(str.swapcase) | known.map(str.upper) | known.map(str.lower)
    leaves = st.tuples(st.sampled_from(TEXT_OPS), values.filter(_pattern_ok)).map(
        lambda t: [["city", t[0], t[1]]]
    )
    rows = [
        {"name": "x", "email": None, "city": city, "country_code": None, "phone": None,
         "mobile": None, "active": True, "created_at": NOW, "salesperson": None, "tags": set()}
        for city in cities
    ]  # fmt: skip
    _check(database, rows, data.draw(st.lists(leaves, min_size=1, max_size=10)))


# -- leads: a many2one to another target model (contact) and paths through it -------------

LEAD_TEXT_PATHS = ["name", "contact.name", "contact.tags.name", "contact.salesperson.name",
                   "salesperson.name", "contact.email"]  # fmt: skip


@st.composite
def lead_leaves(draw: st.DrawFn) -> list[Any]:
    kind = draw(st.sampled_from(["text", "stage", "revenue", "set", "blacklisted"]))
    if kind == "blacklisted":
        path = draw(st.sampled_from(["is_blacklisted", "phone_blacklisted",
                                     "contact.is_blacklisted", "contact.phone_blacklisted"]))  # fmt: skip
        op = draw(st.sampled_from(["=", "!=", "is set", "is not set"]))
        return [path, op, None if "set" in op else draw(st.booleans())]
    if kind == "text":
        op = draw(st.sampled_from(["=", "!=", "ilike", "not ilike", "in", "not in"]))
        value: Any = draw(st.sampled_from(["a", "A", "VIP", "Bob", "vip", "é"]))
        return [
            draw(st.sampled_from(LEAD_TEXT_PATHS)),
            op,
            [value] if "in" in op.split() else value,
        ]
    if kind == "stage":
        return ["stage", draw(st.sampled_from(["=", "!=", "in", "not in"])),
                draw(st.sampled_from(["New", "Won"]))
                if draw(st.booleans()) else ["New", "Lost"]]  # fmt: skip
    if kind == "revenue":
        return ["expected_revenue", draw(st.sampled_from(["<", ">=", "=", "!="])),
                draw(st.sampled_from([0, 500, 1000.5]))]  # fmt: skip
    path = draw(st.sampled_from(["contact", "contact.salesperson", "contact.tags", "tags",
                                 "contact.email"]))  # fmt: skip
    return [path, draw(st.sampled_from(["is set", "is not set"])), None]


def _valid_stage_leaf(leaf: list[Any]) -> list[Any]:
    path, op, value = leaf
    if path == "stage" and op in ("in", "not in") and not isinstance(value, list):
        return [path, op, [value]]
    if path == "stage" and op in ("=", "!=") and isinstance(value, list):
        return [path, op, value[0]]
    return leaf


lead_domains = st.recursive(
    lead_leaves().map(lambda leaf: [_valid_stage_leaf(leaf)]), _extend, max_leaves=5
)


@settings(
    max_examples=int(os.environ.get("NURTURE_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    leads=st.lists(
        st.tuples(
            st.sampled_from(["a", "A", "é", "VIP"]),  # lead name
            st.sampled_from(["New", "Won", "Lost"]),
            st.sampled_from([0.0, 500.0, 1000.5]),
            st.none() | st.integers(0, 3),  # contact index
            st.none() | st.integers(0, len(USER_NAMES) - 1),  # salesperson
            st.none() | st.sampled_from(["a@x", "VIP@x", ""]),  # lead email
            st.none() | st.sampled_from(PHONES),  # lead phone
        ),
        min_size=1,
        max_size=6,
    ),
    contacts=st.lists(
        st.tuples(
            st.sampled_from(["a", "A", "Bob", "é"]),
            st.none() | st.sampled_from(["a@x", "", "VIP@x"]),
            st.none() | st.integers(0, len(USER_NAMES) - 1),
            st.sets(st.integers(0, len(TAG_NAMES) - 1), max_size=2),
            st.none() | st.sampled_from(PHONES),  # contact mobile
        ),
        min_size=4,
        max_size=4,
    ),
    domain_list=st.lists(lead_domains, min_size=1, max_size=6),
    blocked=st.tuples(
        st.dictionaries(st.sampled_from(["a@x", "VIP@x", "vip@x", ""]), st.booleans(), max_size=3),
        st.dictionaries(st.sampled_from(PHONES), st.booleans(), max_size=2),
    ),
)
def test_sql_and_python_agree_on_paths_through_another_target_model(
    database: Database,
    leads: list[tuple[Any, ...]],
    contacts: list[tuple[Any, ...]],
    domain_list: list[list[Any]],
    blocked: tuple[dict[str, bool], dict[str, bool]],
) -> None:
    with database.sessions() as session, session.begin():
        _block(session, blocked)
        users = [User(login=f"u{i}", name=n, created_at=NOW) for i, n in enumerate(USER_NAMES)]
        tags = [Tag(name=name) for name in TAG_NAMES]
        people = [
            Contact(name=name, email=email, mobile=mobile, created_at=NOW, updated_at=NOW,
                    salesperson=None if sp is None else users[sp],
                    tags=[tags[i] for i in sorted(tag_ids)])
            for name, email, sp, tag_ids, mobile in contacts
        ]  # fmt: skip
        rows = [
            Lead(name=name, stage=stage, expected_revenue=revenue, created_at=NOW,
                 updated_at=NOW, contact=None if c is None else people[c],
                 salesperson=None if sp is None else users[sp], email=email, phone=phone)
            for name, stage, revenue, c, sp, email, phone in leads
        ]  # fmt: skip
        session.add_all([*users, *tags, *people, *rows])
        session.flush()
        ids = [lead.id for lead in rows]
        for domain in domain_list:
            condition = compile_domain("lead", domain, now=NOW)
            in_sql = set(session.scalars(select(Lead.id).where(condition, Lead.id.in_(ids))))
            in_python = {r.id for r in rows if evaluate("lead", domain, r, now=NOW)}
            assert in_sql == in_python, validate_domain("lead", domain)
        session.rollback()
