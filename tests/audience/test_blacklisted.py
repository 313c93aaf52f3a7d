"""The computed fields ``is_blacklisted`` and ``phone_blacklisted`` in filters, on SQLite and
PostgreSQL: records and blacklists written through the record services, the compiled SQL,
the Python evaluation and the ``#records`` count give the same, expected records."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from nurture.audience import (
    FilterError,
    compile_domain,
    count_matching,
    domain_to_tree,
    evaluate,
    fields_for_ui,
    tree_to_domain,
    validate_domain,
)
from nurture.cli import cli
from nurture.db import Database
from nurture.records import blacklists
from nurture.records import models as m
from nurture.records import service as svc

from .conftest import NOW

ALL = {"Ann", "Ben", "Cid", "Dee", "Eve", "Fay", "Gus"}


@pytest.fixture
def blocked(db: Database) -> dict[str, int]:
    """Contacts and blacklists, all through the services (addresses and numbers normalised).

    ==== ================== ============================ ====================================
    name stored email       phones                        blacklist
    ==== ================== ============================ ====================================
    Ann  ann@example.com    -                             email " ANN@example.com " (active)
    Ben  ben@example.org    -                             email added, then removed (lifted)
    Cid  (none)             -                             -
    Dee  dee@example.org    phone 06 12 34 56 78 (FR)     phone +33 6 12 34 56 78
    Eve  eve@example.org    mobile +32 470 12 34 56       phone 0470 12 34 56 (BE)
    Fay  fay@example.org    -                             email (active); Fay is archived
    Gus  gus@example.org    phone +49 30 901820           phone added, then removed (lifted)
    ==== ================== ============================ ====================================

    nobody@example.org and +1 202 555 0101 are blacklisted too and belong to no one.
    """
    values: dict[str, dict[str, Any]] = {
        "Ann": {"email": "Ann@Example.COM"},
        "Ben": {"email": "ben@example.org"},
        "Cid": {"country_code": "FR"},
        "Dee": {"email": "dee@example.org", "phone": "06 12 34 56 78", "country_code": "FR"},
        "Eve": {"email": "eve@example.org", "mobile": "+32 470 12 34 56"},
        "Fay": {"email": "fay@example.org", "active": False},
        "Gus": {"email": "gus@example.org", "phone": "+49 30 901820"},
    }
    with db.transaction() as s:
        ids = {
            name: svc.create_record(session=s, model="contact", values={"name": name, **v}, now=NOW)
            for name, v in values.items()
        }
        blacklists.blacklist_email(session=s, email=" ANN@example.com ", now=NOW)
        blacklists.blacklist_email(session=s, email="ben@example.org", now=NOW)
        assert blacklists.unblacklist_email(session=s, email="BEN@example.org", now=NOW)
        blacklists.blacklist_email(session=s, email="fay@example.org", now=NOW)
        blacklists.blacklist_email(session=s, email="nobody@example.org", now=NOW)
        blacklists.blacklist_phone(session=s, number="+33 6 12 34 56 78", now=NOW)
        blacklists.blacklist_phone(session=s, number="0470 12 34 56", country_code="BE", now=NOW)
        blacklists.blacklist_phone(session=s, number="+49 30 901820", now=NOW)
        assert blacklists.unblacklist_phone(session=s, number="+4930901820", now=NOW)
        blacklists.blacklist_phone(session=s, number="+1 202 555 0101", now=NOW)
    return ids


def _matching(db: Database, ids: dict[str, int], domain: Any, model: str = "contact") -> set[str]:
    """Names matched by the SQL condition, after checking Python evaluation agrees."""
    orm = m.Contact if model == "contact" else m.Lead
    names = {v: k for k, v in ids.items()}
    with db.read() as s:
        condition = compile_domain(model, domain, now=NOW)
        in_sql = set(s.scalars(select(orm.id).where(condition, orm.id.in_(list(names)))))
        records = s.scalars(select(orm).where(orm.id.in_(list(names)))).all()
        in_python = {r.id for r in records if evaluate(model, domain, r, now=NOW)}
    assert in_sql == in_python, domain
    return {names[i] for i in in_sql}


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ([["is_blacklisted", "=", True]], {"Ann", "Fay"}),
        ([["is_blacklisted", "=", False]], ALL - {"Ann", "Fay"}),  # lifted and no email: false
        ([["is_blacklisted", "!=", True]], ALL - {"Ann", "Fay"}),
        ([["is_blacklisted", "!=", False]], {"Ann", "Fay"}),
        ([["is_blacklisted", "=", 1]], {"Ann", "Fay"}),
        ([["is_blacklisted", "=", 0]], ALL - {"Ann", "Fay"}),
        ([["is_blacklisted", "is set", None]], {"Ann", "Fay"}),
        ([["is_blacklisted", "is not set", None]], ALL - {"Ann", "Fay"}),
        (["!", ["is_blacklisted", "=", True]], ALL - {"Ann", "Fay"}),
        ("[('is_blacklisted', '=', False), ('email', '!=', False)]", {"Ben", "Dee", "Eve", "Gus"}),
        ([["phone_blacklisted", "=", True]], {"Dee", "Eve"}),  # the phone or the mobile
        ([["phone_blacklisted", "=", False]], ALL - {"Dee", "Eve"}),
        (
            ["|", ["is_blacklisted", "=", True], ["phone_blacklisted", "=", True]],
            {"Ann", "Dee", "Eve", "Fay"},
        ),
        (
            ["!", "|", ["is_blacklisted", "=", True], ["phone_blacklisted", "=", True]],
            {"Ben", "Cid", "Gus"},
        ),  # fmt: skip
    ],
)
def test_blacklisted_fields_match_the_active_blacklist_entries(
    db: Database, blocked: dict[str, int], domain: Any, expected: set[str]
) -> None:
    assert _matching(db, blocked, domain) == expected


def test_count_leaves_out_blacklisted_and_archived_records(
    db: Database, blocked: dict[str, int]
) -> None:
    with db.read() as s:
        assert count_matching(s, "contact", [["is_blacklisted", "=", True]], now=NOW) == 1
        assert count_matching(s, "contact", [["is_blacklisted", "=", False]], now=NOW) == 5
        assert (
            count_matching(
                s, "contact", [["is_blacklisted", "=", True]], now=NOW, include_archived=True
            )
            == 2
        )
        assert count_matching(s, "contact", [["phone_blacklisted", "=", True]], now=NOW) == 2


def test_the_value_follows_the_blacklist_at_once(db: Database, blocked: dict[str, int]) -> None:
    """Nothing is stored on the record: lifting or adding an entry changes the next count."""
    domain = [["is_blacklisted", "=", True]]
    with db.transaction() as s:
        assert blacklists.unblacklist_email(session=s, email="ann@example.com", now=NOW)
        blacklists.blacklist_email(session=s, email="Ben@Example.org", now=NOW)  # blocked again
    assert _matching(db, blocked, domain) == {"Ben", "Fay"}
    with db.transaction() as s:  # a changed address stops matching its old entry
        svc.update_record(
            session=s, model="contact", record_id=blocked["Ben"],
            values={"email": "ben@new.example"}, now=NOW,
        )  # fmt: skip
    assert _matching(db, blocked, domain) == {"Fay"}


def test_an_empty_address_is_never_blacklisted(db: Database) -> None:
    """ "" (possible in rows written directly) matches nothing, even an entry "" written
    around the services (which refuse an empty address)."""
    with db.transaction() as s:
        s.add_all(
            [
                m.Contact(name="Nil", email=None, created_at=NOW, updated_at=NOW),
                m.Contact(name="Empty", email="", phone="", created_at=NOW, updated_at=NOW),
                m.EmailBlacklist(email="", active=True, created_at=NOW, updated_at=NOW),
                m.PhoneBlacklist(number="", active=True, created_at=NOW, updated_at=NOW),
            ]
        )
        s.flush()
        ids = {c.name: c.id for c in s.scalars(select(m.Contact))}
    assert _matching(db, ids, [["is_blacklisted", "=", True]]) == set()
    assert _matching(db, ids, [["phone_blacklisted", "=", True]]) == set()
    assert _matching(db, ids, [["is_blacklisted", "=", False]]) == {"Nil", "Empty"}


def test_paths_reach_the_blacklisted_fields_of_related_target_records(
    db: Database, blocked: dict[str, int]
) -> None:
    with db.transaction() as s:
        leads = {
            name: svc.create_record(session=s, model="lead", values=values, now=NOW)
            for name, values in {
                "L-Ann": {"name": "L-Ann", "contact": blocked["Ann"]},
                "L-Ben": {"name": "L-Ben", "contact": blocked["Ben"], "email": "fay@example.org"},
                "L-none": {"name": "L-none", "phone": "+1 202 555 0101"},
            }.items()
        }
    assert _matching(db, leads, [["contact.is_blacklisted", "=", True]], "lead") == {"L-Ann"}
    # a boolean test on a path needs the related record: no contact, no match
    assert _matching(db, leads, [["contact.is_blacklisted", "=", False]], "lead") == {"L-Ben"}
    assert _matching(db, leads, [["is_blacklisted", "=", True]], "lead") == {"L-Ben"}
    assert _matching(db, leads, [["phone_blacklisted", "=", True]], "lead") == {"L-none"}


@pytest.mark.parametrize("model", ["contact", "lead", "mailing_contact", "event_registration"])
def test_every_target_model_with_email_and_phone_gets_both_fields(model: str) -> None:
    fields = {f["name"]: f for f in fields_for_ui(model)}
    for name, label in (
        ("is_blacklisted", "Blacklisted"),
        ("phone_blacklisted", "Phone blacklisted"),
    ):
        assert fields[name] == {
            "name": name, "label": label, "type": "boolean", "relation": None,
            "operators": ["=", "!="], "selection": [], "readonly": True, "computed": True,
        }  # fmt: skip
    assert fields["email"]["computed"] is False and fields["email"]["readonly"] is False
    assert fields["id"]["readonly"] is True
    validate_domain(model, [["is_blacklisted", "=", False], ["phone_blacklisted", "=", False]])


@pytest.mark.parametrize(
    ("model", "domain", "message"),
    [
        ("contact", [["is_blacklisted", "ilike", "x"]],
         "is_blacklisted: operator 'ilike' does not apply to a boolean field "
         "(allowed: =, !=, is set, is not set)"),
        ("contact", [["is_blacklisted", "in", [True]]],
         "is_blacklisted: operator 'in' does not apply to a boolean field"),
        ("contact", [["is_blacklisted", "=", "yes"]],
         "is_blacklisted: a boolean field is compared with true or false, not 'yes'"),
        ("contact", [["phone_blacklisted", ">", 0]],
         "phone_blacklisted: operator '>' does not apply to a boolean field"),
        ("contact", [["is_blacklisted.name", "=", "x"]],
         "is_blacklisted.name: 'is_blacklisted' on contact is a boolean field, not a relation"),
        # users and other supporting models are no campaign targets: no computed fields
        ("contact", [["salesperson.is_blacklisted", "=", True]],
         "salesperson.is_blacklisted: unknown field 'is_blacklisted' on user"),
        ("contact", [["is_blacklist", "=", True]], "known fields: "),
    ],
)  # fmt: skip
def test_invalid_uses_are_refused_naming_the_field(model: str, domain: Any, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        validate_domain(model, domain)
    assert message in caught.value.message
    assert caught.value.field == domain[0][0]
    if message == "known fields: ":  # the computed fields are listed among the known ones
        assert "is_blacklisted" in caught.value.message


def test_tree_round_trip_and_canonical_form() -> None:
    domain = ["|", ["is_blacklisted", "!=", True], "!", ["phone_blacklisted", "=", 1]]
    assert tree_to_domain(domain_to_tree(domain)) == domain
    assert validate_domain("contact", domain) == [
        "|", ["is_blacklisted", "=", False], "!", ["phone_blacklisted", "=", True],
    ]  # fmt: skip


def test_nurture_count_cli(db: Database, blocked: dict[str, int], tmp_path: Any) -> None:
    env = {
        "NURTURE_DATABASE_URL": db.url,
        "NURTURE_DATA_DIR": str(tmp_path),
        "NURTURE_SECRET_KEY": "x" * 40,
    }
    for domain, expected in (
        ("[('is_blacklisted', '=', True)]", "1"),
        ("[('is_blacklisted', '=', False)]", "5"),
    ):
        result = CliRunner().invoke(cli, ["count", "contact", domain], env=env)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == expected
    result = CliRunner().invoke(
        cli, ["count", "contact", "[('is_blacklisted', 'like', 'x')]"], env=env
    )
    assert result.exit_code == 2
    assert "is_blacklisted: operator 'like' does not apply to a boolean field" in result.output
