"""Writing open and click hits: group commit, each hit committed before its response.

An open or a click is the hottest write of the product: every human hit, inside the
request. Each request thread hands its hit to the :class:`HitRecorder` of its database and
waits. A waiting thread that gets a writer slot takes every hit queued so far and writes
them in one transaction, then wakes their requests; no request answers before its hit is
committed. Under load a commit carries many hits; alone, a hit is a transaction of its own.

A group is three reads — the traces (locked on PostgreSQL) with their step type, their
scheduled children, the links — and one multi-row statement per write: the hit rows and
the engine's event writes (:func:`nurture.engine.events.plan_events`: statistics, children
dated or canceled, participants completed), the statements of
:mod:`nurture.engine.events` compiled once and run on the driver connection (PostgreSQL:
in psycopg's pipeline, so a group costs two round trips).

The outcome of each hit is the one it would have had alone: a trace that does not exist or
is not an email step, or a link of another campaign, is a 404 and writes nothing; a group
holds distinct traces (a second hit on a trace waits for the next group, so it sees the
first). If a group fails (a deadlock, a constraint), it is rolled back and its hits are
written one transaction each, so a failing hit fails alone.

SQLite has a single writer: one group at a time, and the recorder's slot is the hits' write
lock, so hits queue here rather than in SQLite's busy handler (which sleeps in growing steps
and stalls a waiting writer for seconds under load). PostgreSQL writes a few groups at once
so that their round trips overlap.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ARRAY,
    Integer,
    Select,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.engine import Connection

from nurture.channels.email.models import LinkClick, MailOpen, TrackedLink
from nurture.db import Database
from nurture.engine import events
from nurture.engine.models import Trace
from nurture.tracking.hits import Hit, HitPolicy, classify_hit, fires_trigger

#: most hits written in one transaction
MAX_GROUP = 200
#: PostgreSQL transactions of hits in flight at once (SQLite: one)
PG_WRITERS = 2
#: a writer thread with nothing to write for this long ends (a new hit starts one)
WRITER_IDLE_SECONDS = 5.0

_trace: Table = Trace.__table__  # type: ignore[assignment]
_link: Table = TrackedLink.__table__  # type: ignore[assignment]
_open_table: Table = MailOpen.__table__  # type: ignore[assignment]
_click_table: Table = LinkClick.__table__  # type: ignore[assignment]
_SENT_AT = len(events.EVENT_COLUMNS)
_CAMPAIGN = _SENT_AT + 1
_OPEN_INSERT = insert(_open_table)
_CLICK_INSERT = insert(_click_table)
_OPEN_KEYS = ("trace_id", "at", "user_agent", "ip_class", "machine", "reason", "fired", "proxy")
_CLICK_KEYS = ("trace_id", "at", "user_agent", "ip_class", "machine", "reason", "fired", "link_id")


def _ids_in(column: Any, name: str, dialect: str) -> Any:
    """``column`` among the ids of parameter ``name``: a PostgreSQL array, or a JSON array
    on SQLite (one statement text whatever the count)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(Integer)))
    each = func.json_each(bindparam(name, type_=String()))
    values: Select[Any] = select(literal_column("value")).select_from(each)
    return column.in_(values.scalar_subquery())


def _reads(dialect: str) -> tuple[Any, Any, Any]:
    """The group's reads: traces (locked on PostgreSQL), their children, the links."""
    traces = events.event_trace_query(
        dialect, _trace.c.sent_at, _trace.c.campaign_id, where=_ids_in(_trace.c.id, "trace_ids", dialect)
    )
    children = events.children_query(_ids_in(_trace.c.parent_id, "parent_ids", dialect))
    links = select(_link.c.id, _link.c.campaign_id, _link.c.url).where(
        _ids_in(_link.c.id, "link_ids", dialect)
    )
    return traces, children, links


_PYFORMAT = re.compile(r"%\(([^)]+)\)s")


class _Compiled:
    """A statement compiled once for the driver: SQL text, bind order, constants, and the
    bind processors of its types (what SQLAlchemy would apply per execution)."""

    __slots__ = (
        "arguments", "constants", "execute", "name", "positional", "prepare", "processors", "sql"
    )

    def __init__(self, stmt: Any, dialect: Any, keys: Sequence[str] | None = None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        self.sql = str(compiled)
        self.positional: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None
        )
        self.constants = dict(compiled.params)
        processors = []
        for name in self.constants:
            bind = compiled.binds.get(name)
            if bind is not None:
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors.append((name, processor))
        self.processors = tuple(processors)
        # PostgreSQL: a server-side prepared statement (``PREPARE name AS … $1 …`` once per
        # connection, then ``EXECUTE name(…)``), so a query string of many statements is
        # planned once per connection, not once per statement
        order: dict[str, int] = {}

        def number(match: re.Match[str]) -> str:
            return f"${order.setdefault(match.group(1), len(order) + 1)}"

        numbered = _PYFORMAT.sub(number, self.sql)
        self.arguments = tuple(order)
        self.name = "nurture_hit_" + hashlib.sha1(numbered.encode()).hexdigest()[:16]
        self.prepare = f"PREPARE {self.name} AS {numbered}"
        self.execute = f"EXECUTE {self.name}({', '.join(['%s'] * len(order))})"

    def pg_execute(self, cursor: Any, values: dict[str, Any]) -> str:
        """``EXECUTE`` of this statement with ``values`` bound client-side by ``cursor``."""
        merged = self.params(values)
        text: str = cursor.mogrify(self.execute, [merged[name] for name in self.arguments])
        return text

    def params(self, values: dict[str, Any]) -> Any:
        merged = {**self.constants, **values}
        for name, processor in self.processors:
            merged[name] = processor(merged[name])
        if self.positional is not None:
            return tuple(merged[name] for name in self.positional)
        return merged


@dataclass(eq=False)
class PendingHit:
    """One request's hit; the recorder fills in the outcome."""

    kind: Literal["open", "click"]
    trace_id: int
    link_id: int | None
    user_agent: str | None
    ip: str | None
    at: datetime
    method: str = "GET"
    # outcome, set once the hit's transaction committed (or failed)
    found: bool = False
    url: str | None = None
    error: BaseException | None = None
    # who waits: a thread (``record``) or a coroutine (``record_async``)
    waiter: threading.Event | None = None
    future: asyncio.Future[None] | None = None

    def finish(self) -> None:
        """Wake whoever waits for this hit (called once, after commit or failure)."""
        if self.waiter is not None:
            self.waiter.set()
        future = self.future
        if future is not None:
            try:
                future.get_loop().call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a cancelled request still had its hit written
        future.set_result(None)


@dataclass
class _Plan:
    """What a group writes: hit rows, engine event writes, and each hit's outcome."""

    opens: list[dict[str, Any]]
    clicks: list[dict[str, Any]]
    writes: events.EventWrites
    outcomes: list[tuple[bool, str | None]]


class HitRecorder:
    """Group commit of tracking hits for one database (see the module docstring)."""

    def __init__(self, db: Database, policy: HitPolicy) -> None:
        self.db = db
        self.policy = policy
        # writer threads: one on SQLite (one writer; the thread is also the hits' write
        # lock), a few on PostgreSQL so that round trips overlap
        self._max_writers = PG_WRITERS if db.dialect == "postgresql" else 1
        self._writers = 0
        self._idle_writers = 0
        self._cond = threading.Condition()
        self._queue: list[PendingHit] = []
        self._compiled: dict[int, _Compiled] = {}
        self._idle: list[Connection] = []
        self._reads = tuple(_Compiled(stmt, db.engine.dialect) for stmt in _reads(db.dialect))

    def record(self, hit: PendingHit) -> PendingHit:
        """Write ``hit`` and return it with its outcome once committed; raises what writing
        it raised. Blocks the calling thread."""
        hit.waiter = threading.Event()
        self._submit(hit)
        hit.waiter.wait()
        if hit.error is not None:
            raise hit.error
        return hit

    async def record_async(self, hit: PendingHit) -> PendingHit:
        """:meth:`record` for a coroutine: the event loop is free while the hit is written."""
        hit.future = asyncio.get_running_loop().create_future()
        self._submit(hit)
        await hit.future
        if hit.error is not None:
            raise hit.error
        return hit

    def _submit(self, hit: PendingHit) -> None:
        with self._cond:
            self._queue.append(hit)
            if self._idle_writers:
                self._cond.notify()
            elif self._writers < self._max_writers:
                self._writers += 1
                threading.Thread(target=self._writer, name="nurture-hit-writer", daemon=True).start()

    def _writer(self) -> None:
        """A writer thread: groups until the queue has been empty for a while."""
        try:
            while True:
                with self._cond:
                    while not self._queue:
                        self._idle_writers += 1
                        try:
                            self._cond.wait(WRITER_IDLE_SECONDS)
                        finally:
                            self._idle_writers -= 1
                        if not self._queue:
                            return
                    group = self._take()
                self._write(group)
        finally:
            with self._cond:
                self._writers -= 1
                kept, self._idle = (self._idle, []) if self._writers == 0 else ([], self._idle)
            for conn in kept:  # the last writer gives the kept connections back to the pool
                conn.close()

    def _take(self) -> list[PendingHit]:
        """The next group (the queue lock held): queued hits in order, on distinct traces
        (a second hit on a trace waits for the next group, so it sees the first one's
        writes)."""
        seen: set[int] = set()
        size = 0
        for hit in self._queue[:MAX_GROUP]:
            if hit.trace_id in seen:
                break
            seen.add(hit.trace_id)
            size += 1
        group = self._queue[:size]
        del self._queue[:size]
        return group

    def _write(self, group: list[PendingHit]) -> None:
        try:
            outcomes = self._write_group(group)
        except Exception as exc:
            if len(group) == 1:
                group[0].error = exc
                group[0].finish()
                return
            for hit in group:  # a failing hit fails alone
                self._write([hit])
            return
        except BaseException as exc:  # never leave a request waiting
            for hit in group:
                hit.error = exc
                hit.finish()
            raise
        for hit, (found, url) in zip(group, outcomes, strict=True):
            hit.found, hit.url = found, url
            hit.finish()

    def _statement(self, stmt: Any, keys: Sequence[str] | None = None) -> _Compiled:
        found = self._compiled.get(id(stmt))
        if found is None:
            found = _Compiled(stmt, self.db.engine.dialect, keys)
            self._compiled[id(stmt)] = found
        return found

    def _connection(self) -> Connection:
        with self._cond:
            if self._idle:
                return self._idle.pop()
        return self.db.engine.connect()

    def _release(self, conn: Connection) -> None:
        """Keep ``conn`` for the next group while hits are waiting (no pool check-out and
        ping between groups under load); else back to the pool."""
        if not conn.invalidated:
            with self._cond:
                if self._queue and len(self._idle) < self._max_writers:
                    self._idle.append(conn)
                    return
        conn.close()

    def _write_group(self, group: Sequence[PendingHit]) -> list[tuple[bool, str | None]]:
        sa_conn = self._connection()
        try:
            raw: Any = sa_conn.connection.driver_connection
            if self.db.dialect == "postgresql":
                import psycopg
                from psycopg import pq

                # statements this recorder prepared on this connection (kept with it in the pool)
                prepared: set[str] = sa_conn.connection.info.setdefault("nurture_hit_prepared", set())
                raw.autocommit = True  # the query strings carry BEGIN and COMMIT
                try:
                    try:
                        outcomes, dated = self._run_postgresql(raw, prepared, group)
                    except (
                        psycopg.errors.InvalidSqlStatementName,
                        psycopg.errors.DuplicatePreparedStatement,
                    ):
                        # the session's prepared statements are not what we noted (psycopg
                        # sends DEALLOCATE ALL after a ROLLBACK when it had prepared statements
                        # of its own; a PREPARE survives a rollback): ask the server, try again
                        raw.execute("ROLLBACK")
                        prepared.clear()
                        prepared.update(
                            row[0]
                            for row in raw.execute(
                                "SELECT name FROM pg_prepared_statements"
                                " WHERE starts_with(name, 'nurture_hit_')"
                            )
                        )
                        outcomes, dated = self._run_postgresql(raw, prepared, group)
                except BaseException:
                    # a failed string may have left the session's prepared statements unknown
                    sa_conn.invalidate()
                    raise
                finally:
                    if not sa_conn.invalidated:
                        if raw.info.transaction_status != pq.TransactionStatus.IDLE:
                            raw.execute("ROLLBACK")
                        raw.autocommit = False
            else:
                # in this process's queue of writers (the embedded worker's batches, API
                # writes), not in SQLite's busy handler
                with self.db.write_turn():
                    try:
                        raw.execute("BEGIN IMMEDIATE")
                        outcomes, dated = self._run_sqlite(raw, group)
                        raw.commit()
                    except BaseException:
                        raw.rollback()
                        raise
        finally:
            self._release(sa_conn)
        if dated:
            events.wakeup.set()
        return outcomes

    def _writes(self, plan: _Plan) -> list[tuple[_Compiled, list[dict[str, Any]]]]:
        writes: list[tuple[_Compiled, list[dict[str, Any]]]] = []
        if plan.opens:
            writes.append((self._statement(_OPEN_INSERT, _OPEN_KEYS), plan.opens))
        if plan.clicks:
            writes.append((self._statement(_CLICK_INSERT, _CLICK_KEYS), plan.clicks))
        writes.extend((self._statement(stmt), params) for stmt, params in plan.writes.statements())
        return writes

    def _run_sqlite(
        self, raw: Any, group: Sequence[PendingHit]
    ) -> tuple[list[tuple[bool, str | None]], bool]:
        """The group on the sqlite3 connection ``raw``, in its transaction."""
        trace_ids = json.dumps(sorted({h.trace_id for h in group}))
        link_ids = sorted({h.link_id for h in group if h.link_id is not None})
        load, children_of, links_of = self._reads
        rows = raw.execute(load.sql, load.params({"trace_ids": trace_ids})).fetchall()
        children: dict[int, list[Any]] = {}
        for child in raw.execute(children_of.sql, children_of.params({"parent_ids": trace_ids})):
            children.setdefault(child[0], []).append(child)
        links = (
            raw.execute(links_of.sql, links_of.params({"link_ids": json.dumps(link_ids)})).fetchall()
            if link_ids
            else []
        )
        plan = self._plan(group, rows, children, links)
        for compiled, params in self._writes(plan):
            raw.executemany(compiled.sql, [compiled.params(p) for p in params])
        return plan.outcomes, bool(plan.writes.dates)

    def _run_postgresql(
        self, raw: Any, prepared: set[str], group: Sequence[PendingHit]
    ) -> tuple[list[tuple[bool, str | None]], bool]:
        """The group on the psycopg connection ``raw`` in two round trips: ``BEGIN`` and the
        three reads in one query string, then every write and ``COMMIT`` in another, each
        statement an ``EXECUTE`` of a statement prepared on this connection (``prepared``:
        the names already there). The values are bound client-side by psycopg (its literal
        quoting), so each round trip is one wait for the writer thread."""
        from psycopg import ClientCursor

        trace_ids = sorted({h.trace_id for h in group})
        link_ids = sorted({h.link_id for h in group if h.link_id is not None})
        load, children_of, links_of = self._reads
        cur = ClientCursor(raw)

        def script(statements: list[tuple[_Compiled, dict[str, Any]]], head: str, tail: str) -> str:
            parts = [head] if head else []
            for compiled, _values in statements:
                if compiled.name not in prepared:
                    parts.append(compiled.prepare)
                    prepared.add(compiled.name)
            parts.extend(compiled.pg_execute(cur, values) for compiled, values in statements)
            if tail:
                parts.append(tail)
            return ";\n".join(parts)

        reads = [(load, {"trace_ids": trace_ids}), (children_of, {"parent_ids": trace_ids})]
        if link_ids:
            reads.append((links_of, {"link_ids": link_ids}))
        cur.execute(script(reads, "BEGIN", ""))  # no parameters: the text is final
        while cur.description is None:  # past BEGIN and PREPAREs
            cur.nextset()
        rows = cur.fetchall()
        cur.nextset()
        children: dict[int, list[Any]] = {}
        for child in cur.fetchall():
            children.setdefault(child[0], []).append(child)
        links: list[Any] = []
        if link_ids:
            cur.nextset()
            links = cur.fetchall()
        plan = self._plan(group, rows, children, links)
        writes = [(compiled, p) for compiled, params in self._writes(plan) for p in params]
        cur.execute(script(writes, "", "COMMIT"))
        return plan.outcomes, bool(plan.writes.dates)

    # ------------------------------------------------------------------ planning

    def _plan(
        self,
        group: Sequence[PendingHit],
        rows: Sequence[Sequence[Any]],
        children: dict[int, list[Any]],
        links: Sequence[Sequence[Any]],
    ) -> _Plan:
        by_trace = {row[0]: row for row in rows}
        by_link = {r[0]: (r[1], r[2]) for r in links}
        plan = _Plan([], [], events.EventWrites(), [])
        fired: list[events.Item] = []
        policy = self.policy
        for hit in group:
            row = by_trace.get(hit.trace_id)
            if row is None or row[2] != "email":
                plan.outcomes.append((False, None))
                continue
            url: str | None = None
            if hit.kind == "click":
                link = by_link.get(hit.link_id or 0)
                if link is None or link[0] != row[_CAMPAIGN]:
                    plan.outcomes.append((False, None))
                    continue
                url = link[1]
            sent_at = row[_SENT_AT]
            if isinstance(sent_at, str):  # SQLite's text timestamps, read on the driver
                sent_at = datetime.fromisoformat(sent_at)
            verdict = classify_hit(
                Hit(hit.kind, hit.user_agent, hit.ip, hit.at, sent_at, method=hit.method), policy
            )
            fire = fires_trigger(hit.kind, verdict, policy)
            values: dict[str, Any] = {
                "trace_id": hit.trace_id,
                "at": hit.at,
                "user_agent": (hit.user_agent or "")[:500] or None,
                "ip_class": verdict.ip_class,
                "machine": verdict.machine,
                "reason": verdict.reason[:200] or None,
                "fired": fire,
            }
            if hit.kind == "open":
                values["proxy"] = verdict.proxy
                plan.opens.append(values)
            else:
                values["link_id"] = hit.link_id
                plan.clicks.append(values)
            if fire:
                fired.append((row, hit.kind, hit.at))
            plan.outcomes.append((True, url))
        if fired:
            events.check_events(fired)
            plan.writes = events.plan_events(fired, children)
        return plan


_recorders_lock = threading.Lock()


def recorder_for(state: Any, db: Database, policy: Callable[[], HitPolicy]) -> HitRecorder:
    """The app's recorder (``state.tracking_recorder``), made on first use."""
    recorder: HitRecorder | None = getattr(state, "tracking_recorder", None)
    if recorder is None or recorder.db is not db:
        with _recorders_lock:
            recorder = getattr(state, "tracking_recorder", None)
            if recorder is None or recorder.db is not db:
                recorder = HitRecorder(db, policy())
                state.tracking_recorder = recorder
    return recorder
