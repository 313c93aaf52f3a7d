"""CSV import: read a file as a stream and import it into a target model.

Import streams the file: rows are read, checked and converted one at a time
(:mod:`.csv_mapping`) and written in batches of a few thousand (:mod:`.csv_store`), one
transaction per batch, on a second thread, so a file of any size runs in constant memory. A
bad row (wrong type, invalid email, unknown salesperson, …) is reported with its line number
and skipped; the valid rows around it are imported. Problems with the file itself (unknown
column, missing required column) refuse the whole file before anything is written.
"""

from __future__ import annotations

import csv
import gc
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TextIO

from tqdm import tqdm

from nurture.db import Database
from nurture.errors import ValidationError
from nurture.records.csv_cells import SafeCSVWriter
from nurture.records.csv_mapping import (
    ImportResult,
    RowError,
    RowParser,
    RowProblem,
    match_header,
    plan_columns,
    target_model,
)
from nurture.records.csv_store import Batch, Writer
from nurture.records.registry import ModelDef

DEFAULT_BATCH_SIZE = 5000


class _CountingLines:
    """Iterates a text file's lines and counts the characters read (for the progress bar)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.consumed = 0
        self.nul = False  # a NUL byte was read since the flag was last cleared

    def __iter__(self) -> Iterator[str]:
        for line in self.stream:
            self.consumed += len(line)
            if "\x00" in line:
                self.nul = True
            yield line


def import_csv(
    *,
    db: Database,
    model: str,
    source: str | os.PathLike[str] | TextIO,
    now: datetime,
    mapping: Mapping[str, str] | None = None,
    upsert_by: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    errors_to: IO[str] | None = None,
    progress: bool = False,
    delimiter: str | None = None,
    subscribe_list: str | None = None,
) -> ImportResult:
    """Import a CSV file into ``model``; one transaction per batch of valid rows.

    ``mapping`` maps CSV column headers to field names (``""`` skips a column); without it a
    header matches a field by name or label, case-insensitively. ``upsert_by`` updates the
    record whose field has the row's value instead of creating one. Bad rows are reported
    in the result (and to ``errors_to`` as CSV: line, field, error, then the row).
    ``subscribe_list`` (mailing contacts) subscribes every imported row to that list.
    """
    mdef = target_model(model)
    if subscribe_list is not None and mdef.name != "mailing_contact":
        raise ValidationError("--list only applies to mailing_contact imports", field="list")
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise ValidationError(f"{path}: no such file", field="file")
        with path.open(encoding="utf-8-sig", newline="") as stream:
            return _import_stream(
                db, mdef, stream, now=now, mapping=mapping, upsert_by=upsert_by,
                batch_size=batch_size, errors_to=errors_to, total=path.stat().st_size,
                progress=progress, delimiter=delimiter, subscribe_list=subscribe_list,
            )  # fmt: skip
    return _import_stream(
        db, mdef, source, now=now, mapping=mapping, upsert_by=upsert_by, batch_size=batch_size,
        errors_to=errors_to, total=None, progress=progress, delimiter=delimiter,
        subscribe_list=subscribe_list,
    )  # fmt: skip


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _import_stream(
    db: Database,
    model: ModelDef,
    stream: TextIO,
    *,
    now: datetime,
    mapping: Mapping[str, str] | None,
    upsert_by: str | None,
    batch_size: int,
    errors_to: IO[str] | None,
    total: int | None,
    progress: bool,
    delimiter: str | None,
    subscribe_list: str | None,
) -> ImportResult:
    lines = _CountingLines(stream)
    line_iter = iter(lines)
    first = next(line_iter, None)
    if first is None or not first.strip():
        raise ValidationError("the file is empty (expected a header row)", field="file")
    sep = delimiter or _sniff_delimiter(first)

    def chained() -> Iterator[str]:
        yield first
        yield from line_iter

    reader = csv.reader(chained(), delimiter=sep)
    headers = next(reader)
    plan, ignored = plan_columns(model, headers, mapping=mapping, upsert_by=upsert_by)
    mapped = {k.strip().lower() for k in (mapping or {})}
    unknown = [
        h for h in ignored
        if h.strip() and h.strip().lower() not in mapped and match_header(model, h) is None
    ]
    result = ImportResult(model=model.name, ignored_columns=ignored, unknown_columns=unknown)
    width = len(headers)
    error_writer = SafeCSVWriter(errors_to) if errors_to is not None else None
    if error_writer is not None:
        error_writer.writerow(["line", "field", "error", *headers])

    def on_error(error: RowError, raw: list[str]) -> None:  # called by the writing thread
        result.add_error(error)
        if error_writer is not None:
            error_writer.writerow([error.line, error.field or "", error.message, *raw])

    writer = Writer(
        db, model, plan, now=now, upsert_by=upsert_by, subscribe_list=subscribe_list,
        result=result, on_error=on_error,
    )  # fmt: skip
    bar = tqdm(
        total=total, unit="B", unit_scale=True, desc=f"import {model.name}",
        file=sys.stderr, disable=not progress, mininterval=0.5,
    )  # fmt: skip
    parser = RowParser(model, plan, width)
    batch = Batch([], [])
    last_line = reader.line_num
    reported = 0
    pipeline = _Pipeline(writer.write)
    with _heap_frozen():
        try:
            for raw in reader:
                line = last_line + 1
                last_line = reader.line_num
                if not raw or (len(raw) == 1 and not raw[0].strip()):
                    continue  # blank line
                result.rows += 1
                if lines.nul:  # no database stores NUL in text
                    lines.nul = False
                    error = RowError(line, None, "the row contains a NUL byte")
                    batch.rejected.append((error, raw))
                    continue
                try:
                    batch.rows.append(parser.parse(raw, line))
                except RowProblem as problem:
                    batch.rejected.append((RowError(line, problem.field, problem.message), raw))
                if len(batch.rows) >= batch_size:
                    pipeline.submit(batch)
                    batch = Batch([], [])
                    bar.update(lines.consumed - reported)
                    reported = lines.consumed
            pipeline.submit(batch)
            pipeline.finish()
            bar.update(max(lines.consumed, total or 0) - reported)
        except csv.Error as exc:
            raise ValidationError(
                f"line {reader.line_num}: malformed CSV: {exc}", field="file"
            ) from None
        finally:
            pipeline.stop()
            bar.close()
    return result


_gc_lock = threading.Lock()
_gc_pauses = 0


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """Keep the cyclic garbage collector off the long-lived heap while rows stream through.

    Every batch in flight made the collector's full passes rescan the whole heap
    (SQLAlchemy, phonenumbers' metadata), which cost a fifth of the import's time.
    ``gc.freeze()`` moves the objects alive at the start out of the collector's view;
    the collector itself stays on for everything the import allocates, and the heap is
    handed back (``gc.unfreeze()``) when the last concurrent import ends.
    """
    global _gc_pauses
    with _gc_lock:
        if _gc_pauses == 0:
            gc.freeze()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0:
                gc.unfreeze()


class _Pipeline:
    """Writes batches on a second thread while the caller reads and checks the next one.

    The database driver releases the GIL while SQLite or PostgreSQL works, so parsing and
    writing overlap. The queue holds one batch: memory stays bounded, and a slow database
    slows the reader down instead of piling batches up.
    """

    def __init__(self, write: Callable[[Batch], None]) -> None:
        self.write = write
        self.queue: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        #: set by the writer on its first error and never cleared: batches still queued
        #: behind a failed one are dropped, even after the caller has taken the error
        self.failed = False
        self.thread = threading.Thread(target=self._run, name="nurture-import", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            batch = self.queue.get()
            if batch is None:
                return
            if not self.failed:
                try:
                    self.write(batch)
                except BaseException as exc:  # re-raised in the caller's thread
                    self.error = exc
                    self.failed = True

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def submit(self, batch: Batch) -> None:
        self._raise()
        if batch.rows or batch.rejected:
            self.queue.put(batch)

    def finish(self) -> None:
        """Wait until every submitted batch is written; raise what the writer raised."""
        self.stop()
        self._raise()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
