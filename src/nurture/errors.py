"""Errors raised by service functions; the UI, API and CLI turn them into messages.

Each carries a machine-readable ``code``, a human ``message`` that names the problem,
and where it applies the ``field`` at fault (a field name, a filter path, a CSV column).
"""

from __future__ import annotations


class NurtureError(Exception):
    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}


class ValidationError(NurtureError):
    """Input refused: nothing was written."""

    code = "invalid"


class NotFound(NurtureError):
    code = "not_found"


class Conflict(NurtureError):
    """A unique value already exists, or the operation does not fit the current state."""

    code = "conflict"
