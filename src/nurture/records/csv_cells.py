"""CSV cells made safe for spreadsheets (OWASP CSV injection) and back.

Every CSV Nurture writes (exports, import error reports) goes through :class:`SafeCSVWriter`:
a cell that a spreadsheet would run as a formula gets a leading ``'``, which import removes
again (:func:`restore_cell`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from typing import Any

#: first characters that make a spreadsheet read a cell as a formula (OWASP CSV injection)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9 .,]*")


def neutralise_cell(cell: str) -> str:
    """``cell`` made inert for spreadsheets: a leading ``'`` when it starts like a formula
    (numbers such as ``-5`` or ``+33612345678`` stay as they are)."""
    if cell.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def restore_cell(cell: str) -> str:
    """The inverse of :func:`neutralise_cell` (what import does with a cell)."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_TRIGGERS):
        return cell[1:]
    return cell


class SafeCSVWriter:
    """``csv.writer`` whose cells are neutralised unless ``raw`` (every CSV Nurture writes
    goes through it)."""

    def __init__(self, out: Any, *, raw: bool = False) -> None:
        self._writer = csv.writer(out)
        self._raw = raw

    def writerow(self, row: Sequence[Any]) -> None:
        self._writer.writerow(row if self._raw else [self._cell(c) for c in row])

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.writerow(row)

    @staticmethod
    def _cell(value: Any) -> Any:
        return neutralise_cell(value) if isinstance(value, str) else value
