"""CSV import and export on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nurture.audience.export import export_csv
from nurture.db import Database
from nurture.errors import ValidationError
from nurture.records import models as m
from nurture.records import service as svc
from nurture.records.csv_import import import_csv

from .helpers import NOW, listening


def _write(tmp_path: Path, content: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def _count(db: Database, orm: type) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(orm)) or 0)


def _seed_users(db: Database) -> int:
    with db.transaction() as s:
        return svc.create_record(
            session=s, model="user",
            values={"login": "sophie@example.com", "name": "Sophie Laurent", "role": "marketer"},
            now=NOW,
        )  # fmt: skip


MIXED = """Name,Email,Phone,Country,Tags,Salesperson
Ann One,Ann@Example.COM,06 12 34 56 78,fr,"VIP, Hot",Sophie Laurent
Bad Email,not-an-email,,FR,Ghost tag,
"Multi
line",multi@example.com,,US,,sophie@example.com
,noname@example.com,,,,
Carl,carl@example.com,,FRANCE,,
Dan,dan@example.com,,US,,Nobody
Eve,eve@example.com,12,DE,,{uid}
Short,row
"""


def test_import_keeps_good_rows_and_reports_bad_ones_by_line(db: Database, tmp_path: Path) -> None:
    uid = _seed_users(db)
    path = _write(tmp_path, MIXED.format(uid=uid))
    errors = io.StringIO()
    with listening() as heard:
        result = import_csv(
            db=db, model="contact", source=path, now=NOW, errors_to=errors, batch_size=2
        )
    assert (result.created, result.updated, result.error_count) == (3, 0, 5)
    assert [(e.line, e.field) for e in result.errors] == [
        (3, "email"), (6, "name"), (7, "country_code"), (8, "salesperson"), (10, None),
    ]  # fmt: skip
    rejected = list(csv.reader(io.StringIO(errors.getvalue())))
    assert rejected[0][:3] == ["line", "field", "error"]
    assert [r[0] for r in rejected[1:]] == ["3", "6", "7", "8", "10"]
    assert rejected[1][3:] == ["Bad Email", "not-an-email", "", "FR", "Ghost tag", ""]
    with db.read() as s:
        contacts = {c.name: c for c in s.scalars(select(m.Contact))}
        assert set(contacts) == {"Ann One", "Multi\nline", "Eve"}
        ann = contacts["Ann One"]
        assert (ann.email, ann.phone, ann.phone_valid) == ("ann@example.com", "+33612345678", True)
        assert sorted(t.name for t in ann.tags) == ["Hot", "VIP"]
        assert ann.salesperson_id == uid and ann.created_at == NOW
        assert contacts["Multi\nline"].salesperson_id == uid
        assert (contacts["Eve"].phone, contacts["Eve"].phone_valid) == ("12", False)
        assert sorted(s.scalars(select(m.Tag.name))) == ["Hot", "VIP"]  # no "Ghost tag"
        assert sorted(heard.changed_ids("contact")) == sorted(c.id for c in contacts.values())


def test_unknown_column_is_reported_and_the_known_ones_imported(db: Database, tmp_path: Path) -> None:
    path = _write(tmp_path, "name,email,shoe size\nAnn,ann@example.com,38\n")
    result = import_csv(db=db, model="contact", source=path, now=NOW)
    assert result.created == 1 and result.error_count == 0
    assert result.unknown_columns == ["shoe size"] and result.ignored_columns == ["shoe size"]
    assert _count(db, m.Contact) == 1
    path = _write(tmp_path, "name,email,shoe size\nBen,ben@example.com,38\n")
    result = import_csv(
        db=db, model="contact", source=path, now=NOW,
        mapping={"shoe size": "", "email": "email"},
    )  # fmt: skip
    assert result.created == 1 and result.ignored_columns == ["shoe size"]
    assert result.unknown_columns == []  # skipped on purpose: not reported as unknown


def test_export_neutralises_formulas_and_import_restores_them(db: Database, tmp_path: Path) -> None:
    from nurture.audience.export import export_to_string

    path = _write(
        tmp_path,
        'name,email,phone\n"=HYPERLINK(""http://evil.example"")",a@example.com,+33612345678\n'
        "@SUM(A1),b@example.com,\n-2+3,c@example.com,\n",
    )
    assert import_csv(db=db, model="contact", source=path, now=NOW).created == 3
    with db.read() as s:
        out = export_to_string(session=s, model="contact", now=NOW)
        buffer = io.StringIO()
        export_csv(session=s, model="contact", out=buffer, now=NOW, raw=True)
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["a@example.com"]["name"] == "'=HYPERLINK(\"http://evil.example\")"
    assert rows["a@example.com"]["phone"] == "+33612345678"  # a number stays a number
    assert rows["b@example.com"]["name"] == "'@SUM(A1)"
    assert rows["c@example.com"]["name"] == "'-2+3"
    raw_rows = {r["email"]: r for r in csv.DictReader(io.StringIO(buffer.getvalue()))}
    assert raw_rows["a@example.com"]["name"] == '=HYPERLINK("http://evil.example")'
    # re-importing the safe export gives the names back as they were
    again = tmp_path / "again.csv"
    again.write_text(out, encoding="utf-8")
    result = import_csv(db=db, model="contact", source=again, now=NOW, upsert_by="email")
    assert result.updated == 3 and result.error_count == 0
    with db.read() as s:
        names = sorted(c.name for c in s.scalars(select(m.Contact)))
    assert names == ["-2+3", '=HYPERLINK("http://evil.example")', "@SUM(A1)"]


def test_missing_required_column_and_unknown_model_are_refused(
    db: Database, tmp_path: Path
) -> None:
    path = _write(tmp_path, "email\nann@example.com\n")
    with pytest.raises(ValidationError) as info:
        import_csv(db=db, model="contact", source=path, now=NOW)
    assert info.value.field == "name"
    with pytest.raises(ValidationError) as info:
        import_csv(db=db, model="tag", source=path, now=NOW)
    assert info.value.field == "model"


def test_header_mapping_and_semicolon_files(db: Database, tmp_path: Path) -> None:
    path = _write(tmp_path, "Full name;E-mail;Société\nAnn;ann@example.com;Acme\n")
    result = import_csv(
        db=db, model="contact", source=path, now=NOW,
        mapping={"Full name": "name", "E-mail": "email", "Société": "Company"},
    )  # fmt: skip
    assert result.created == 1 and result.error_count == 0
    with db.read() as s:
        c = s.scalar(select(m.Contact))
        assert c is not None and (c.name, c.email, c.company_name) == (
            "Ann",
            "ann@example.com",
            "Acme",
        )


def test_upsert_by_email_updates_existing_and_dedupes_the_file(
    db: Database, tmp_path: Path
) -> None:
    with db.transaction() as s:
        existing = svc.create_record(
            session=s, model="contact",
            values={"name": "Old Name", "email": "ann@example.com", "tags": ["Old"]}, now=NOW,
        )  # fmt: skip
    path = _write(
        tmp_path,
        "name,email,city,tags\n"
        "Ann New,ANN@example.com,Paris,VIP\n"
        "Bob,bob@example.com,Lyon,\n"
        "Bobby,bob@example.com,Nice,Hot\n"
        "No Email,,Rome,\n",
    )
    result = import_csv(
        db=db, model="contact", source=path, now=NOW, upsert_by="email", batch_size=3
    )
    assert (result.created, result.updated, result.error_count) == (2, 1, 0)
    with db.read() as s:
        rows = {c.email: c for c in s.scalars(select(m.Contact))}
        assert len(rows) == 3
        ann = rows["ann@example.com"]
        assert (ann.id, ann.name, ann.city) == (existing, "Ann New", "Paris")
        assert [t.name for t in ann.tags] == ["VIP"]
        # Rows 3 and 4 share an address: one record, the later row's values.
        bob = rows["bob@example.com"]
        assert (bob.name, bob.city, [t.name for t in bob.tags]) == ("Bobby", "Nice", ["Hot"])
        assert rows[None].name == "No Email"


def test_export_round_trip(db: Database, tmp_path: Path) -> None:
    uid = _seed_users(db)
    with db.transaction() as s:
        svc.create_record(
            session=s, model="contact",
            values={"name": "Zoë, \"Z\" Ünal", "email": "zoe@bücher.de", "phone": "+4930901820",
                    "country_code": "DE", "tags": ["VIP", "Hot"], "salesperson": uid,
                    "active": False, "city": "Berlin"},
            now=NOW,
        )  # fmt: skip
        svc.create_record(session=s, model="contact", values={"name": "Plain"}, now=NOW)
    with db.read() as s:
        first = io.StringIO()
        assert export_csv(session=s, model="contact", out=first, now=NOW) == 2
    with db.transaction() as s:
        ids = list(s.scalars(select(m.Contact.id)))
        svc.delete_records(session=s, model="contact", ids=ids, now=NOW)
    path = _write(tmp_path, first.getvalue())
    result = import_csv(db=db, model="contact", source=path, now=NOW)
    assert (result.created, result.error_count) == (2, 0)
    assert set(result.ignored_columns) == {"id", "created_at", "updated_at"}
    with db.read() as s:
        second = io.StringIO()
        export_csv(session=s, model="contact", out=second, now=NOW)

    def body(text: str) -> list[list[str]]:
        rows = list(csv.reader(io.StringIO(text)))
        return [r[1:] for r in rows]  # ids differ

    assert body(second.getvalue()) == body(first.getvalue())
    assert "salesperson" in first.getvalue().splitlines()[0]
    assert "sophie@example.com" in first.getvalue() and "Hot,VIP" in first.getvalue()


def test_export_with_a_filter(db: Database) -> None:
    with db.transaction() as s:
        for name, country in (("Ann", "FR"), ("Bob", "DE"), ("Cid", "FR")):
            svc.create_record(session=s, model="contact", values={"name": name, "country_code": country}, now=NOW)  # fmt: skip
    with db.read() as s:
        out = io.StringIO()
        count = export_csv(
            session=s, model="contact", out=out, now=NOW, domain="[('country_code', '=', 'FR')]"
        )
    names = [row["name"] for row in csv.DictReader(io.StringIO(out.getvalue()))]
    assert count == 2 and names == ["Ann", "Cid"]


def test_import_leads_registrations_and_mailing_contacts(db: Database, tmp_path: Path) -> None:
    uid = _seed_users(db)
    with db.transaction() as s:
        cid = svc.create_record(session=s, model="contact", values={"name": "Ann"}, now=NOW)
        svc.create_record(session=s, model="event", values={"name": "Expo", "date_begin": NOW}, now=NOW)  # fmt: skip
    leads = _write(
        tmp_path,
        f"name,contact,salesperson,stage,priority,expected_revenue\n"
        f"Deal,{cid},sophie@example.com,qualified,2,1500.5\n"
        f"Bad,,,Maybe,9,x\n",
        "leads.csv",
    )
    result = import_csv(db=db, model="lead", source=leads, now=NOW)
    assert (result.created, [e.field for e in result.errors]) == (1, ["stage"])
    with db.read() as s:
        lead = s.scalar(select(m.Lead))
        assert lead is not None
        assert (lead.contact_id, lead.salesperson_id, lead.stage, lead.priority, lead.expected_revenue) == (cid, uid, "Qualified", 2, 1500.5)  # fmt: skip
    regs = _write(tmp_path, "event,attendee name,email,state\nExpo,Ann,a@example.com,done\nNope,Bob,b@example.com,open\n", "r.csv")  # fmt: skip
    result = import_csv(db=db, model="event_registration", source=regs, now=NOW)
    assert result.created == 1 and [(e.line, e.field) for e in result.errors] == [(3, "event")]
    subs = _write(tmp_path, "name,email\nAnn,a@example.com\nBob,b@example.com\n", "s.csv")
    result = import_csv(db=db, model="mailing_contact", source=subs, now=NOW, subscribe_list="Newsletter")  # fmt: skip
    assert result.created == 2
    result = import_csv(db=db, model="mailing_contact", source=subs, now=NOW, upsert_by="email", subscribe_list="Newsletter")  # fmt: skip
    assert result.updated == 2
    assert _count(db, m.MailingSubscription) == 2
    assert _count(db, m.MailingList) == 1


def test_malformed_file_is_refused(db: Database, tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        import_csv(db=db, model="contact", source=_write(tmp_path, ""), now=NOW)
    with pytest.raises(ValidationError):
        import_csv(db=db, model="contact", source=tmp_path / "missing.csv", now=NOW)


def test_lead_export_names_users_by_login_and_contacts_by_id(db: Database, tmp_path: Path) -> None:
    uid = _seed_users(db)
    with db.transaction() as s:
        twin_a = svc.create_record(session=s, model="contact", values={"name": "Twin"}, now=NOW)
        svc.create_record(session=s, model="contact", values={"name": "Twin"}, now=NOW)
        svc.create_record(
            session=s, model="lead",
            values={"name": "Deal", "contact": twin_a, "salesperson": uid, "tags": ["Hot"]},
            now=NOW,
        )  # fmt: skip
    with db.read() as s:
        out = io.StringIO()
        export_csv(session=s, model="lead", out=out, now=NOW)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert (row["contact"], row["salesperson"], row["tags"]) == (
        str(twin_a),
        "sophie@example.com",
        "Hot",
    )
    result = import_csv(db=db, model="lead", source=_write(tmp_path, out.getvalue()), now=NOW)
    assert (result.created, result.error_count) == (1, 0)
    with db.read() as s:
        contacts = sorted(s.scalars(select(m.Lead.contact_id)), key=lambda v: v or 0)
    assert contacts == [twin_a, twin_a]


def test_ambiguous_reference_by_name_is_a_row_error(db: Database, tmp_path: Path) -> None:
    with db.transaction() as s:
        for _ in range(2):
            svc.create_record(session=s, model="contact", values={"name": "Twin"}, now=NOW)
    path = _write(tmp_path, "name,contact\nDeal,Twin\n")
    result = import_csv(db=db, model="lead", source=path, now=NOW)
    assert result.created == 0
    assert [(e.line, e.field) for e in result.errors] == [(2, "contact")]
    assert "matches 2" in result.errors[0].message


def test_upsert_rows_that_would_create_still_need_required_fields(
    db: Database, tmp_path: Path
) -> None:
    with db.transaction() as s:
        cid = svc.create_record(session=s, model="contact", values={"name": "Ann", "email": "ann@example.com"}, now=NOW)  # fmt: skip
    path = _write(tmp_path, "email,city\nann@example.com,Paris\nnew@example.com,Rome\n")
    result = import_csv(db=db, model="contact", source=path, now=NOW, upsert_by="email")
    assert (result.created, result.updated) == (0, 1)
    assert [(e.line, e.field) for e in result.errors] == [(3, "name")]
    by_id = _write(tmp_path, f"id,city\n{cid},Oslo\n{cid + 99},Rome\n", "by_id.csv")
    result = import_csv(db=db, model="contact", source=by_id, now=NOW, upsert_by="id")
    assert result.updated == 1 and [(e.line, e.field) for e in result.errors] == [(3, "id")]
    with db.read() as s:
        assert s.scalar(select(m.Contact.city)) == "Oslo"
        assert _count(db, m.Contact) == 1


def test_garbage_collector_is_restored_after_an_import(db: Database, tmp_path: Path) -> None:
    import gc

    from nurture.records import events

    assert gc.isenabled()
    import_csv(db=db, model="contact", source=_write(tmp_path, "name\nAnn\n"), now=NOW)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    calls: list[int] = []

    def fail_on_second_batch(*_args: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("listener failed")

    events.on_changed(fail_on_second_batch)
    try:
        with pytest.raises(RuntimeError):
            import_csv(
                db=db, model="contact", source=_write(tmp_path, "name\nBo\nCy\nDi\n", "b.csv"),
                now=NOW, batch_size=1,
            )  # fmt: skip
    finally:
        events._changed.remove(fail_on_second_batch)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert _count(db, m.Contact) == 2  # Ann, and Bo's batch before the failure


def test_nul_bytes_make_a_row_error(db: Database, tmp_path: Path) -> None:
    path = _write(tmp_path, "name,city\nAnn,Paris\nA\0b,Rome\nCy,Oslo\n")
    result = import_csv(db=db, model="contact", source=path, now=NOW)
    assert result.created == 2
    assert [(e.line, e.message) for e in result.errors] == [(3, "the row contains a NUL byte")]
