"""SMS encoding and segment count (shown live while a marketer edits an SMS template).

A message is sent in the GSM 03.38 7-bit alphabet when every character is in its basic set
or its extension table, and in UCS-2 otherwise:

* GSM-7: one septet per basic character, two (escape + character) per extension character
  (``^ { } \\ [ ~ ] | €`` and the form feed); 160 septets fit in one SMS, a longer message
  is split into parts of 153 (the other 7 carry the concatenation header);
* UCS-2: counted in UTF-16 code units, so a character outside the Basic Multilingual Plane
  (most emoji) counts two; 70 units in one SMS, parts of 67.

Parts are filled the way phones and gateways split them: an escape sequence (two septets)
or a surrogate pair (two units) is never cut across two parts, so a part may end one unit
short of its capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["gsm7", "ucs2"]

#: GSM 03.38 basic character set (the 128 positions, as Unicode; ESC excluded).
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: each costs two septets (escape + character).
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

SINGLE_GSM7 = 160
PART_GSM7 = 153
SINGLE_UCS2 = 70
PART_UCS2 = 67


@dataclass(frozen=True)
class SegmentInfo:
    encoding: Encoding
    #: septets (GSM-7) or UTF-16 code units (UCS-2)
    length: int
    #: number of SMS parts (0 for an empty message)
    segments: int
    #: units still free in the last part before another part is needed
    remaining: int

    @property
    def per_segment(self) -> int:
        """Capacity of one part at the current size (160/153 or 70/67)."""
        if self.encoding == "gsm7":
            return SINGLE_GSM7 if self.segments <= 1 else PART_GSM7
        return SINGLE_UCS2 if self.segments <= 1 else PART_UCS2


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` has a GSM-7 encoding."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _costs(text: str, encoding: Encoding) -> list[int]:
    if encoding == "gsm7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def _pack(costs: list[int], capacity: int) -> tuple[int, int]:
    """(parts, units used in the last part) when units are packed without splitting one."""
    parts, used = 1, 0
    for cost in costs:
        if used + cost > capacity:
            parts += 1
            used = 0
        used += cost
    return parts, used


def count_segments(text: str) -> SegmentInfo:
    """Encoding, length, number of parts and the room left in the last part."""
    encoding: Encoding = "gsm7" if is_gsm7(text) else "ucs2"
    single, part = (SINGLE_GSM7, PART_GSM7) if encoding == "gsm7" else (SINGLE_UCS2, PART_UCS2)
    costs = _costs(text, encoding)
    length = sum(costs)
    if length == 0:
        return SegmentInfo(encoding, 0, 0, single)
    if length <= single:
        return SegmentInfo(encoding, length, 1, single - length)
    parts, used = _pack(costs, part)
    return SegmentInfo(encoding, length, parts, part - used)
