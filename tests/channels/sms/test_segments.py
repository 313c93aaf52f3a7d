"""GSM-7 / UCS-2 detection and segment counts, with examples and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurture.channels.sms.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    count_segments,
    is_gsm7,
)

GSM_CHARS = sorted(GSM7_BASIC | GSM7_EXTENSION)
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=700)
any_text = st.text(max_size=400)


@pytest.mark.parametrize(
    ("text", "encoding", "length", "segments", "remaining"),
    [
        ("", "gsm7", 0, 0, 160),
        ("Hello", "gsm7", 5, 1, 155),
        ("a" * 160, "gsm7", 160, 1, 0),
        ("a" * 161, "gsm7", 161, 2, 145),
        ("a" * 306, "gsm7", 306, 2, 0),
        ("a" * 307, "gsm7", 307, 3, 152),
        ("€" * 80, "gsm7", 160, 1, 0),
        ("€" * 81, "gsm7", 162, 2, 143),  # 76 euros fill part 1 (152 septets)
        ("{}[]", "gsm7", 8, 1, 152),
        ("Café ü Ñ à", "gsm7", 10, 1, 150),
        ("ç", "ucs2", 1, 1, 69),  # only upper-case Ç is in GSM-7
        ("Привет", "ucs2", 6, 1, 64),
        ("é" * 69 + "ж", "ucs2", 70, 1, 0),
        ("ж" * 71, "ucs2", 71, 2, 63),
        ("😀", "ucs2", 2, 1, 68),
        ("😀" * 35, "ucs2", 70, 1, 0),
        ("😀" * 36, "ucs2", 72, 2, 61),  # 33 emoji fill part 1 (66 units)
    ],
    ids=lambda v: repr(v)[:20] if isinstance(v, str) else str(v),
)
def test_examples(text: str, encoding: str, length: int, segments: int, remaining: int) -> None:
    info = count_segments(text)
    assert (info.encoding, info.length, info.segments, info.remaining) == (
        encoding, length, segments, remaining,
    )


def test_escape_sequence_is_not_split_across_parts() -> None:
    # 152 plain septets then a euro sign (2 septets): the euro moves to the next part.
    text = "a" * 152 + "€" + "a" * 10
    info = count_segments(text)
    assert info.length == 164 and info.segments == 2
    assert info.remaining == 153 - 12


def test_surrogate_pair_is_not_split_across_parts() -> None:
    text = "ж" * 66 + "😀" + "ж" * 10
    info = count_segments(text)
    assert info.length == 78 and info.segments == 2
    assert info.remaining == 67 - 12


@given(gsm_text)
def test_gsm_text_is_gsm7_and_counts_septets(text: str) -> None:
    info = count_segments(text)
    assert info.encoding == "gsm7"
    assert info.length == len(text) + sum(c in GSM7_EXTENSION for c in text)


@given(any_text)
def test_encoding_is_gsm7_exactly_when_every_char_is_in_the_tables(text: str) -> None:
    expected = all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)
    assert is_gsm7(text) is expected
    assert count_segments(text).encoding == ("gsm7" if expected else "ucs2")


@given(any_text)
def test_ucs2_length_is_utf16_code_units(text: str) -> None:
    info = count_segments(text)
    if info.encoding == "ucs2":
        assert info.length == len(text.encode("utf-16-le")) // 2


@given(st.one_of(gsm_text, any_text))
def test_segments_bounds(text: str) -> None:
    info = count_segments(text)
    single, part = (160, 153) if info.encoding == "gsm7" else (70, 67)
    if info.length == 0:
        assert info.segments == 0
    elif info.length <= single:
        assert info.segments == 1
        assert info.remaining == single - info.length
    else:
        # at least the pure arithmetic count, at most one unit lost per part boundary
        assert info.segments >= -(-info.length // part)
        assert info.length <= info.segments * part
        assert info.length + (info.segments - 1) >= (info.segments - 1) * part
        assert 0 <= info.remaining < part


@given(st.one_of(gsm_text, any_text), st.text(max_size=50))
def test_appending_never_reduces_segments_within_an_encoding(text: str, more: str) -> None:
    before = count_segments(text)
    after = count_segments(text + more)
    if before.encoding == after.encoding:
        assert after.segments >= before.segments
        assert after.length >= before.length


@given(st.one_of(gsm_text, any_text))
def test_remaining_fills_exactly(text: str) -> None:
    """Adding ``remaining`` plain characters fills the last part without opening a new one."""
    info = count_segments(text)
    if info.segments == 0:
        return
    filler = "a" if info.encoding == "gsm7" else "ж"
    if info.encoding == "ucs2" and is_gsm7(text):
        return
    padded = count_segments(text + filler * info.remaining)
    assert padded.segments == info.segments
    assert padded.remaining == 0
    assert count_segments(text + filler * (info.remaining + 1)).segments == info.segments + 1
