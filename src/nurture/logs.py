"""Logging set-up: plain text by default, one JSON object per line with
``NURTURE_LOG_FORMAT=json`` (for log shippers).

A JSON line carries ``time``, ``level``, ``logger``, ``message``, the process id, the
exception text if any, and every extra field given to the call (``extra={...}``), such as
``campaign_id``, ``activity_id``, ``trace_id``.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": os.getpid(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | str | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text") -> None:
    """Configure the root logger (``fmt``: ``text`` or ``json``); text keeps handlers that
    are already there, as :func:`logging.basicConfig` does."""
    if fmt != "json":
        logging.basicConfig(level=level, format=TEXT_FORMAT)
        return
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_nurture_json", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._nurture_json = True  # type: ignore[attr-defined]
        for old in list(root.handlers):
            if type(old) is logging.StreamHandler:  # a plain console handler: replaced
                root.removeHandler(old)
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter())
    root.setLevel(level)
