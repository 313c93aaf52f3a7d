"""Exactly once: racing workers, crashed leases, stale workers."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from nurture.campaigns import campaigns as cs
from nurture.db import Database
from nurture.engine.execute import claim, new_token, process_group, run_due
from nurture.worker.loop import tick

from .conftest import FakeChannel
from .helpers import T0, add, add_contacts, make_campaign, states, traces

N = 400


def _backlog(db: Database, n: int = N) -> int:
    with db.transaction() as s:
        add_contacts(s, [{"email": f"u{i}@x.io"} for i in range(n)])
        cid = make_campaign(s)
        mail = add(s, cid, "Mail", activity_type="email")
        cs.start_campaign(session=s, now=T0 - timedelta(hours=1), campaign_id=cid)
    # enrol at T0 - 1h (nothing due yet), so the backlog is due at T0
    from nurture.engine.enrol import sync_campaigns

    sync_campaigns(db, now=T0 - timedelta(hours=1), full=True)
    return mail


def test_two_workers_racing_never_execute_a_trace_twice(db: Database, channel: FakeChannel) -> None:
    mail = _backlog(db)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(worker_id: str) -> None:
        try:
            barrier.wait()
            while run_due(db, now=T0, limit=25, worker_id=worker_id).claimed:
                pass
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    counts = Counter(channel.sent)
    assert len(counts) == N
    assert max(counts.values()) == 1
    assert states(db, mail) == ["processed"] * N


def test_crashed_worker_lease_returns_rows(db: Database, channel: FakeChannel) -> None:
    mail = _backlog(db, 10)
    token = new_token("crashed")
    with db.transaction() as s:
        claimed = claim(s, now=T0, limit=10, token=token, lease=timedelta(minutes=5))
    assert list(claimed) == [mail] and len(claimed[mail]) == 10
    # the lease holds: nobody else takes them
    assert run_due(db, now=T0 + timedelta(minutes=4), worker_id="other").claimed == 0
    # the lease ran out: they return and run once
    assert run_due(db, now=T0 + timedelta(minutes=6), worker_id="other").processed == 10
    # the crashed worker coming back cannot run them again
    with db.transaction() as s:
        result = process_group(s, activity_id=mail, trace_ids=claimed[mail], token=token, now=T0)
    assert result.processed == 0
    assert Counter(channel.sent).most_common(1)[0][1] == 1
    assert all(t.claimed_by.startswith("other:") for t in traces(db, activity_id=mail))


def test_executor_exception_marks_batch_error(db: Database, channel: FakeChannel) -> None:
    from nurture.engine import executors

    def boom(batch: executors.ExecutionBatch) -> dict[int, executors.Outcome]:
        raise RuntimeError("provider down")

    mail = _backlog(db, 3)
    executors.register_executor("email", boom)
    tick(db, now=T0)
    got = traces(db, activity_id=mail)
    assert {(t.state, t.state_message) for t in got} == {("error", "Exception in email: provider down")}


def test_a_failing_group_ends_in_error_instead_of_coming_back(
    db: Database, channel: FakeChannel, monkeypatch: object
) -> None:
    import nurture.engine.execute as ex

    mail = _backlog(db, 3)

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("filter no longer compiles")

    monkeypatch.setattr(ex, "applied_domain", broken)  # type: ignore[attr-defined]
    first = run_due(db, now=T0, worker_id="w")
    assert (first.claimed, first.error) == (3, 3)
    assert run_due(db, now=T0, worker_id="w").claimed == 0
    got = traces(db, activity_id=mail)
    assert {(t.state, t.state_message) for t in got} == {("error", "Engine error: filter no longer compiles")}
    assert channel.sent == []


def test_transient_database_error_retries_the_batch_instead_of_failing_it(
    db: Database, channel: FakeChannel
) -> None:
    import pytest
    from sqlalchemy.exc import OperationalError

    from nurture.engine import executors

    calls = {"n": 0}

    def flaky(batch: executors.ExecutionBatch) -> dict[int, executors.Outcome]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("UPDATE contact", {}, Exception("deadlock detected"))
        return channel(batch)

    mail = _backlog(db, 3)
    executors.register_executor("email", flaky)
    with pytest.raises(OperationalError):
        run_due(db, now=T0, worker_id="w")
    assert states(db, mail) == ["scheduled"] * 3
    assert all(t.claimed_by is None for t in traces(db, activity_id=mail))  # leases released
    assert run_due(db, now=T0, worker_id="w").processed == 3
    assert len(channel.sent) == 3
