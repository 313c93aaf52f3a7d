"""Email and phone blacklists: block and unblock with a reason and history, bulk checks,
import of a blacklist file."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from nurture.errors import ValidationError
from nurture.records import models as m
from nurture.records.validation import (
    InvalidEmail,
    normalize_country_code,
    normalize_email,
    parse_phone,
)


def _email_key(email: str) -> str:
    try:
        return normalize_email(email)
    except InvalidEmail as exc:
        raise ValidationError(
            f"email: invalid email address {email!r}: {exc}", field="email"
        ) from None


BlacklistKind = Literal["email", "phone"]


def _blacklist_table(kind: BlacklistKind) -> tuple[Any, Any]:
    """(ORM class, its value column) of one blacklist."""
    if kind == "email":
        return m.EmailBlacklist, m.EmailBlacklist.email
    return m.PhoneBlacklist, m.PhoneBlacklist.number


def _set_blocked(
    session: Session,
    *,
    kind: BlacklistKind,
    key: str,
    blocked: bool,
    now: datetime,
    reason: str | None,
    source: str,
) -> tuple[int | None, bool]:
    """Block or unblock one normalised value; (row id, whether anything changed).

    A change writes a :class:`~nurture.records.models.BlacklistHistory` row, so the
    history tells who was blocked when, why, and by what (UI, import, bounce, …).
    """
    table, column = _blacklist_table(kind)
    row = session.scalar(select(table).where(column == key))
    if blocked:
        changed = row is None or not row.active
        if row is None:
            row = table(reason=reason, active=True, created_at=now, updated_at=now)
            setattr(row, column.key, key)
            session.add(row)
        else:
            row.active = True
            row.reason = reason if reason is not None else row.reason
            row.updated_at = now
    else:
        if row is None or not row.active:
            return (None if row is None else int(row.id)), False
        row.active = False
        row.updated_at = now
        changed = True
    if changed:
        session.add(
            m.BlacklistHistory(
                kind=kind,
                value=key,
                action="add" if blocked else "remove",
                reason=reason,
                source=source,
                created_at=now,
            )
        )
    session.flush()
    return int(row.id), changed


def blacklist_email(
    *,
    session: Session,
    email: str,
    now: datetime,
    reason: str | None = None,
    source: str = "manual",
) -> int:
    """Block an address from marketing mail (idempotent: one row per address)."""
    row_id, _ = _set_blocked(
        session, kind="email", key=_email_key(email), blocked=True, now=now, reason=reason, source=source
    )
    assert row_id is not None
    return row_id


def unblacklist_email(
    *,
    session: Session,
    email: str,
    now: datetime,
    reason: str | None = None,
    source: str = "manual",
) -> bool:
    """Lift the block; True when the address was blacklisted."""
    _, changed = _set_blocked(
        session, kind="email", key=_email_key(email), blocked=False, now=now, reason=reason, source=source
    )
    return changed


def is_email_blacklisted(*, session: Session, email: str | None) -> bool:
    if not email:
        return False
    try:
        key = normalize_email(email)
    except InvalidEmail:
        return False
    return (
        session.scalar(
            select(m.EmailBlacklist.id).where(
                m.EmailBlacklist.email == key, m.EmailBlacklist.active.is_(True)
            )
        )
        is not None
    )


def blacklisted_emails(*, session: Session, emails: Iterable[str]) -> set[str]:
    """The subset of (normalised) ``emails`` that is blacklisted."""
    keys = list({e for e in emails if e})
    found: set[str] = set()
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        found.update(
            session.scalars(
                select(m.EmailBlacklist.email).where(
                    m.EmailBlacklist.email.in_(chunk), m.EmailBlacklist.active.is_(True)
                )
            )
        )
    return found


def _phone_key(number: str, country_code: str | None) -> str:
    try:
        country = normalize_country_code(country_code)
    except ValueError as exc:
        raise ValidationError(f"country_code: {exc}", field="country_code") from None
    stored, _valid = parse_phone(number, country)
    if not stored or not any(c.isdigit() for c in stored):
        raise ValidationError(f"number: {number!r} is not a phone number", field="number")
    return stored


def blacklist_phone(
    *,
    session: Session,
    number: str,
    now: datetime,
    reason: str | None = None,
    country_code: str | None = None,
    source: str = "manual",
) -> int:
    """Block a number from SMS (stored in E.164 when it parses)."""
    key = _phone_key(number, country_code)
    row_id, _ = _set_blocked(
        session, kind="phone", key=key, blocked=True, now=now, reason=reason, source=source
    )
    assert row_id is not None
    return row_id


def unblacklist_phone(
    *,
    session: Session,
    number: str,
    now: datetime,
    country_code: str | None = None,
    reason: str | None = None,
    source: str = "manual",
) -> bool:
    key = _phone_key(number, country_code)
    _, changed = _set_blocked(
        session, kind="phone", key=key, blocked=False, now=now, reason=reason, source=source
    )
    return changed


def blacklist_history(
    *, session: Session, kind: BlacklistKind, value: str, country_code: str | None = None
) -> list[m.BlacklistHistory]:
    """Every block and unblock of one address or number, oldest first."""
    key = _email_key(value) if kind == "email" else _phone_key(value, country_code)
    return list(
        session.scalars(
            select(m.BlacklistHistory)
            .where(m.BlacklistHistory.kind == kind, m.BlacklistHistory.value == key)
            .order_by(m.BlacklistHistory.created_at, m.BlacklistHistory.id)
        )
    )


def blacklist_file_values(stream: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, value) from a file of one value per line or a CSV (first column).

    A first line that names the column (``email``, ``phone``, ``number``) is skipped.
    """
    for line, row in enumerate(csv.reader(stream), start=1):
        value = row[0].strip() if row else ""
        if line == 1 and value.lower() in {"email", "phone", "number", "mobile"}:
            continue
        if value:
            yield line, value


@dataclass
class BlacklistImport:
    added: int = 0
    already: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def import_blacklist(
    *,
    session: Session,
    kind: BlacklistKind,
    lines: Iterable[tuple[int, str]],
    now: datetime,
    reason: str | None = None,
    country_code: str | None = None,
    chunk_size: int = 1000,
) -> BlacklistImport:
    """Block many values given as (line number, value); bad values are reported by line.

    Works a chunk at a time with one lookup per chunk, so the file is streamed; values
    that are already blocked are counted, not touched.
    """
    result = BlacklistImport()
    table, column = _blacklist_table(kind)
    chunk: dict[str, int] = {}

    def flush() -> None:
        existing = {
            getattr(row, column.key): row
            for row in session.scalars(select(table).where(column.in_(list(chunk))))
        }
        new_keys = [key for key in chunk if key not in existing]
        if new_keys:  # one multi-row INSERT for the values never seen before
            session.execute(
                insert(table),
                [
                    {column.key: key, "reason": reason, "active": True, "created_at": now, "updated_at": now}
                    for key in new_keys
                ],
            )
            session.execute(
                insert(m.BlacklistHistory),
                [
                    {"kind": kind, "value": key, "action": "add", "reason": reason, "source": "import", "created_at": now}
                    for key in new_keys
                ],
            )
            result.added += len(new_keys)
        for key, row in existing.items():
            if row.active:
                result.already += 1
                continue
            _set_blocked(
                session, kind=kind, key=key, blocked=True, now=now, reason=reason, source="import"
            )
            result.added += 1
        chunk.clear()

    for line, raw in lines:
        value = raw.strip()
        if not value:
            continue
        try:
            key = _email_key(value) if kind == "email" else _phone_key(value, country_code)
        except ValidationError as exc:
            result.errors.append((line, exc.message))
            continue
        if key in chunk:
            result.already += 1
            continue
        chunk[key] = line
        if len(chunk) >= chunk_size:
            flush()
    if chunk:
        flush()
    return result


def is_phone_blacklisted(
    *, session: Session, number: str | None, country_code: str | None = None
) -> bool:
    if not number:
        return False
    stored, _valid = parse_phone(number, country_code)
    return (
        session.scalar(
            select(m.PhoneBlacklist.id).where(
                m.PhoneBlacklist.number == stored, m.PhoneBlacklist.active.is_(True)
            )
        )
        is not None
    )
