"""Group commit of tracking hits (:mod:`nurture.channels.email.tracking`): many hits at once,
each written once with its engine event, and a failing group falling back to one
transaction per hit."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from nurture.channels.email.models import LinkClick, MailOpen, TrackedLink
from nurture.channels.email.tracking import HitRecorder, PendingHit
from nurture.engine.models import Trace
from nurture.tracking.hits import HitPolicy
from nurture.worker.loop import tick

from .conftest import HOUR, HUMAN_UA, T0, Env, campaign_with_email

CONTACTS = 12


def _sent(env: Env) -> tuple[int, dict[str, int], list[int], int]:
    cid, mail, kids, _ = campaign_with_email(
        env.db, [{"name": f"C{i}", "email": f"c{i}@example.org"} for i in range(CONTACTS)]
    )
    tick(env.db, now=T0)
    with env.db.read() as s:
        traces = list(s.scalars(select(Trace.id).where(Trace.activity_id == mail).order_by(Trace.id)))
        link = s.scalars(select(TrackedLink.id).where(TrackedLink.campaign_id == cid)).one()
    assert len(traces) == CONTACTS
    return mail, kids, traces, link


def _hits(traces: list[int], link: int) -> list[PendingHit]:
    at = T0 + HOUR
    opens = [PendingHit("open", t, None, HUMAN_UA, "198.51.100.7", at) for t in traces]
    clicks = [PendingHit("click", t, link, HUMAN_UA, "198.51.100.7", at) for t in traces]
    return [h for pair in zip(opens, clicks, strict=True) for h in pair]


def _count(env: Env, model: object) -> int:
    with env.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def _check_all_applied(env: Env, kids: dict[str, int], traces: list[int]) -> None:
    assert _count(env, MailOpen) == CONTACTS and _count(env, LinkClick) == CONTACTS
    with env.db.read() as s:
        rows = s.execute(select(Trace.opened_at, Trace.clicked_at).where(Trace.id.in_(traces))).all()
        assert all(o is not None and c is not None for o, c in rows)
        for trigger in ("mail_open", "mail_click"):
            dates = list(s.scalars(select(Trace.schedule_date).where(Trace.activity_id == kids[trigger])))
            assert len(dates) == CONTACTS and all(d == T0 + HOUR for d in dates)


def test_concurrent_hits_are_each_written_once_with_their_event(env: Env) -> None:
    _mail, kids, traces, link = _sent(env)
    recorder = HitRecorder(env.db, HitPolicy())
    hits = _hits(traces, link)
    stranger = PendingHit("open", max(traces) + 1000, None, HUMAN_UA, "198.51.100.7", T0 + HOUR)
    wrong_link = PendingHit("click", traces[0], link + 1000, HUMAN_UA, "198.51.100.7", T0 + HOUR)
    errors: list[BaseException] = []

    def send(hit: PendingHit) -> None:
        try:
            recorder.record(hit)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(h,)) for h in [*hits, stranger, wrong_link]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert all(h.found for h in hits)
    assert [h.url for h in hits if h.kind == "click"] == [hits[1].url] * CONTACTS
    assert hits[1].url is not None and hits[1].url.startswith("https://shop.example.com/offer")
    assert not stranger.found and not wrong_link.found  # 404s: nothing written for them
    _check_all_applied(env, kids, traces)


def test_a_failing_group_is_written_one_hit_at_a_time(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    _mail, kids, traces, link = _sent(env)
    recorder = HitRecorder(env.db, HitPolicy())
    real_plan = recorder._plan
    groups: list[int] = []

    def plan(group, *args):  # type: ignore[no-untyped-def]
        groups.append(len(group))
        if len(group) > 1:
            raise RuntimeError("the group fails")
        return real_plan(group, *args)

    monkeypatch.setattr(recorder, "_plan", plan)
    hits = _hits(traces, link)
    # a group holds distinct traces: open of each trace, then the clicks
    opens, clicks = hits[0::2], hits[1::2]
    recorder._write(opens)
    recorder._write(clicks)
    assert groups[0] == CONTACTS and groups.count(1) == 2 * CONTACTS
    assert all(h.found and h.error is None for h in hits)
    _check_all_applied(env, kids, traces)


def test_one_pooled_connection_serves_every_group_even_with_its_state_changed(env: Env) -> None:
    """The recorder keeps per-connection state (PostgreSQL: the statements it prepared, noted
    with the connection). If the session's set changes behind its back (psycopg's own
    DEALLOCATE ALL after a rollback, a PREPARE that survived a rollback) it asks the server
    and writes the group anyway. SQLite keeps no such state: the same sequence of hits on a
    single pooled connection is simply written."""
    postgresql = env.db.dialect == "postgresql"
    from nurture.db import Database
    from nurture.db.engine import make_engine

    _mail, kids, traces, link = _sent(env)
    db = Database(env.db.url)
    db.engine.dispose()
    db.engine = make_engine(env.db.url, pool_size=1, max_overflow=0)  # one connection
    try:
        recorder = HitRecorder(db, HitPolicy())
        hits = _hits(traces, link)
        assert recorder.record(hits[0]).found and recorder.record(hits[1]).found
        if postgresql:
            with db.engine.connect() as conn:  # the recorder's connection: the only one
                raw: Any = conn.connection.driver_connection
                raw.execute("DEALLOCATE ALL")
                noted = conn.connection.info["nurture_hit_prepared"]
                assert noted
        assert recorder.record(hits[2]).found and recorder.record(hits[3]).found
        if postgresql:
            with db.engine.connect() as conn:
                conn.connection.info["nurture_hit_prepared"].clear()  # prepared, but not noted
        for hit in hits[4:]:
            assert recorder.record(hit).found
    finally:
        db.dispose()
    _check_all_applied(env, kids, traces)


@pytest.mark.parametrize(
    "user_agent",
    [
        "x'); DROP TABLE trace; --",
        "Mozilla/5.0 \\' \"quoted\" $$dollar$$ ;\n newline é ✓",
        "E'\\\\x41' || chr(65)",
    ],
)
def test_hostile_user_agents_are_stored_verbatim(env: Env, user_agent: str) -> None:
    """Hit values travel as bound parameters (PostgreSQL: psycopg's client-side literal
    quoting inside the group's query string): whatever a client sends is stored as sent."""
    _mail, _kids, traces, link = _sent(env)
    recorder = HitRecorder(env.db, HitPolicy())
    at = T0 + HOUR
    hit = recorder.record(PendingHit("open", traces[0], None, user_agent, "198.51.100.7", at))
    click = recorder.record(PendingHit("click", traces[1], link, user_agent, "198.51.100.7", at))
    assert hit.found and click.found
    with env.db.read() as s:
        assert list(s.scalars(select(MailOpen.user_agent))) == [user_agent]
        assert list(s.scalars(select(LinkClick.user_agent))) == [user_agent]
    assert _count(env, Trace) > 0  # the trace table is still there
