"""The computed fields (``is_blacklisted``, ``phone_blacklisted``) are read-only everywhere
records are written: the record services and the API refuse them naming the field, a CSV
import skips their column like any read-only column; the API's field listing marks them.
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from nurture.accounts import tokens, users
from nurture.clock import utcnow
from nurture.db import Database
from nurture.errors import ValidationError
from nurture.records import blacklists
from nurture.records import models as m
from nurture.records import service as svc
from nurture.records.catalog import REGISTRY
from nurture.records.csv_import import import_csv
from nurture.records.registry import FieldDef, RegistryError, computed_fields
from tests.api.conftest import make_app

from .helpers import NOW


def test_the_registry_derives_them_from_the_email_and_phone_fields() -> None:
    for model in REGISTRY.targets():
        expected = set()
        if model.email_field:
            expected.add("is_blacklisted")
        if model.phone_fields:
            expected.add("phone_blacklisted")
        assert set(model.computed) == expected
        assert not set(model.computed) & set(model.fields)  # no column, not a stored field
    contact = REGISTRY.get("contact")
    assert contact.computed["is_blacklisted"].depends == ("email",)
    assert set(contact.computed["phone_blacklisted"].depends) == {"phone", "mobile"}
    assert REGISTRY.get("user").computed == {}  # not a campaign target
    clash = {"is_blacklisted": FieldDef(name="is_blacklisted", type="boolean", label="x")}
    with pytest.raises(RegistryError, match="'is_blacklisted' clashes with a computed field"):
        computed_fields("x", clash, "email", ())


@pytest.mark.parametrize("field", ["is_blacklisted", "phone_blacklisted"])
def test_create_and_update_refuse_them_naming_the_field(db: Database, field: str) -> None:
    with db.transaction() as s:
        with pytest.raises(ValidationError) as caught:
            svc.create_record(
                session=s, model="contact",
                values={"name": "Ann", "email": "ann@example.com", field: False}, now=NOW,
            )  # fmt: skip
        assert caught.value.field == field
        assert caught.value.message.startswith(f"{field} is read-only: it is computed")
    with db.read() as s:
        assert s.scalar(select(m.Contact.id)) is None  # nothing written
    with db.transaction() as s:
        ann = svc.create_record(
            session=s, model="lead", values={"name": "Ann", "email": "ann@example.com"}, now=NOW
        )
    with db.transaction() as s, pytest.raises(ValidationError) as caught:
        svc.update_record(session=s, model="lead", record_id=ann, values={field: True}, now=NOW)
    assert caught.value.field == field and "read-only" in caught.value.message


def test_a_csv_import_skips_their_columns(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "name,email,Blacklisted,phone_blacklisted\nAnn,ann@example.com,true,1\n", encoding="utf-8"
    )
    result = import_csv(db=db, model="contact", source=path, now=NOW)
    assert (result.created, result.error_count) == (1, 0)
    assert result.ignored_columns == ["Blacklisted", "phone_blacklisted"]
    with db.read() as s:  # the value is the blacklist's, not the file's
        assert not blacklists.is_email_blacklisted(session=s, email="ann@example.com")
        assert s.scalars(select(m.EmailBlacklist)).all() == []
    mapped = tmp_path / "mapped.csv"
    mapped.write_text("name,blocked\nBen,yes\n", encoding="utf-8")
    result = import_csv(
        db=db, model="contact", source=mapped, now=NOW, mapping={"blocked": "is_blacklisted"}
    )
    assert (result.created, result.ignored_columns) == (1, ["blocked"])


@pytest.fixture
def admin(db: Database, tmp_path: Path) -> Iterator[TestClient]:
    with db.transaction() as s:
        now = utcnow()
        user = users.create_user(s, login="admin@example.com", role="admin", name="A", now=now)
        token, _row = tokens.create_token(s, user, "token", now=now)
    client = TestClient(make_app(db, tmp_path), raise_server_exceptions=False)
    client.headers.update({"Authorization": f"Bearer {token}"})
    yield client
    client.close()


def test_api_lists_them_as_computed_and_read_only_and_refuses_writes(
    db: Database, admin: TestClient
) -> None:
    base = "/api/v1/records"
    r = admin.get(f"{base}/mailing_contact/fields")
    assert r.status_code == 200
    fields = {f["name"]: f for f in r.json()}
    assert fields["is_blacklisted"] == {
        "name": "is_blacklisted", "label": "Blacklisted", "type": "boolean", "relation": None,
        "operators": ["=", "!="], "selection": [], "readonly": True, "computed": True,
    }  # fmt: skip
    assert fields["phone_blacklisted"]["computed"] is True
    assert fields["email"]["computed"] is False and fields["email"]["readonly"] is False

    r = admin.post(f"{base}/contact", json={"name": "Ann", "is_blacklisted": False})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "is_blacklisted"
    assert "is_blacklisted is read-only" in r.json()["error"]["message"]
    r = admin.post(f"{base}/contact", json={"name": "Ann", "email": "ann@example.com"})
    assert r.status_code in (200, 201), r.text
    ann = r.json()["id"]
    r = admin.patch(f"{base}/contact/{ann}", json={"phone_blacklisted": True})
    assert r.status_code == 422 and r.json()["error"]["field"] == "phone_blacklisted"

    with db.transaction() as s:
        blacklists.blacklist_email(session=s, email="ANN@example.com", now=NOW)
    r = admin.get(f"{base}/contact/count", params={"filter": '[["is_blacklisted", "=", true]]'})
    assert r.status_code == 200 and r.json()["count"] == 1
    r = admin.get(f"{base}/contact/count", params={"filter": '[["is_blacklisted", "ilike", "x"]]'})
    assert r.status_code in (400, 422)
    assert r.json()["error"]["field"] == "is_blacklisted"
