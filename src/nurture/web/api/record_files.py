"""CSV files of the campaign target models: ``/api/v1/records/{model}/import`` and
``/api/v1/records/{model}/export``.

An import reports per-row errors and goes on with the other rows; an export streams the
file while a thread writes it, and stops when the client goes away or stops reading.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse

from nurture import audience
from nurture.audience.export import export_csv
from nurture.errors import ValidationError
from nurture.records.csv_import import import_csv
from nurture.web.api.common import AUTH_ERRORS, CONFLICT, NOT_FOUND, Db, Now
from nurture.web.api.records import (
    FilterParam,
    ImportReport,
    ReadTarget,
    RowErrorOut,
    WriteTarget,
    empty_filter,
)

EXPORT_STALL_SECONDS = 300.0

#: included before the records router: ``export`` must not be read as a ``{record_id}``
router = APIRouter(prefix="/records", tags=["records"], responses={**AUTH_ERRORS, **NOT_FOUND})


@router.post(
    "/{model}/import",
    summary="Import a CSV file (per-row error report)",
    responses=CONFLICT,
)
def import_route(
    mdef: WriteTarget,
    db: Db,
    now: Now,
    file: Annotated[UploadFile, File(description="CSV with a header row (UTF-8).")],
    upsert_by: Annotated[
        str | None, Form(max_length=64, description="Update records with this field's value.")
    ] = None,
    mapping: Annotated[
        str | None,
        Form(max_length=10_000, description='JSON object: CSV header → field name ("" skips).'),
    ] = None,
    subscribe_list: Annotated[
        str | None,
        Form(max_length=200, description="mailing_contact: subscribe every row to this list."),
    ] = None,
) -> ImportReport:
    columns: dict[str, str] | None = None
    if mapping:
        try:
            parsed = json.loads(mapping)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
        ):
            raise ValidationError(
                "mapping: expected a JSON object of column header → field name", field="mapping"
            )
        columns = parsed
    raw = file.file.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"the file is not UTF-8 text (byte {exc.start})", field="file"
        ) from None
    if "\x00" in text:
        raise ValidationError("the file contains NUL bytes; expected CSV text", field="file")
    result = import_csv(
        db=db,
        model=mdef.name,
        source=io.StringIO(text, newline=""),
        now=now,
        mapping=columns,
        upsert_by=upsert_by or None,
        subscribe_list=subscribe_list or None,
    )
    return ImportReport(
        model=result.model,
        rows=result.rows,
        created=result.created,
        updated=result.updated,
        error_count=result.error_count,
        errors=[RowErrorOut(line=e.line, field=e.field, message=e.message) for e in result.errors],
        ignored_columns=list(result.ignored_columns),
        unknown_columns=list(result.unknown_columns),
    )


class _QueueWriter(io.TextIOBase):
    """A file object whose writes go to a bounded queue (backpressure on the exporter)."""

    def __init__(self, chunks: queue.Queue[str | BaseException | None], stop: threading.Event):
        super().__init__()
        self.chunks = chunks
        self.stop = stop
        self.buffer: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        if self.stop.is_set():
            raise BrokenPipeError("the client went away")
        self.buffer.append(text)
        self.size += len(text)
        if self.size >= 64 * 1024:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            text = "".join(self.buffer)
            self.buffer, self.size = [], 0
            self.send(text)

    def send(self, item: str | BaseException | None) -> None:
        waited = 0.0
        while True:  # a client that stopped reading must not hold the export forever
            if self.stop.is_set() or waited >= EXPORT_STALL_SECONDS:
                raise BrokenPipeError("the client stopped reading the export")
            try:
                self.chunks.put(item, timeout=1.0)
                return
            except queue.Full:
                waited += 1.0


@router.get(
    "/{model}/export",
    summary="Export records as CSV (streamed)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The CSV file."}},
)
def export_route(
    mdef: ReadTarget,
    db: Db,
    now: Now,
    filter_: FilterParam = None,
    raw: Annotated[
        bool,
        Query(
            description="Write cells verbatim: no leading ' on cells a spreadsheet would "
            "run as formulas (= + - @ tab CR)."
        ),
    ] = False,
) -> StreamingResponse:
    domain = empty_filter(filter_)
    audience.validate_domain(mdef.name, domain)  # a bad filter is a 422, before streaming
    chunks: queue.Queue[str | BaseException | None] = queue.Queue(maxsize=16)
    stop = threading.Event()

    def produce() -> None:
        writer = _QueueWriter(chunks, stop)
        try:
            with db.read() as session:
                export_csv(
                    session=session, model=mdef.name, out=writer, now=now, domain=domain, raw=raw
                )
            writer.flush()
            writer.send(None)
        except BrokenPipeError:
            return  # the client went away
        except BaseException as exc:  # handed to the consumer, which re-raises
            try:
                writer.send(exc)
            except BrokenPipeError:
                return

    def consume() -> Iterator[str]:
        thread = threading.Thread(target=produce, name="nurture-export", daemon=True)
        thread.start()
        try:
            while True:
                item = chunks.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    chunks.get_nowait()
                except queue.Empty:
                    thread.join(0.05)

    filename = f"{mdef.name}.csv"
    return StreamingResponse(
        consume(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
