"""Email and phone normalisation for business records.

Email addresses are stored normalised: surrounding blanks and a ``Name <address>`` wrapper
removed, the whole address lower-cased (as Odoo's ``email_normalize`` does, so blacklist,
unicity and upsert compare like with like) and an internationalised domain stored in its
Unicode form (``xn--bcher-kva.de`` and ``BÜCHER.de`` both become ``bücher.de``).

Phone numbers are parsed with ``phonenumbers`` using the record's country as the default
region. A valid number is stored in E.164 (``+33612345678``); an invalid one is kept as
entered and flagged invalid: that is a data-quality fact, not an error.

Both run once per row of a CSV import, so each has a fast path: plain ASCII addresses are
checked with a regular expression and only each *domain* goes through ``email-validator``
(cached); numbers already written in international form skip ``phonenumbers.parse``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumber, PhoneNumberFormat
from phonenumbers.phonenumberutil import NumberParseException

MAX_EMAIL_LENGTH = 254


class InvalidEmail(ValueError):
    """The value is not a syntactically valid email address; the message says why."""


_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_FAST_EMAIL = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+[a-z][a-z0-9-]*[a-z0-9])")
_domain_cache: dict[str, str | InvalidEmail] = {}
_DOMAIN_CACHE_MAX = 100_000


def _check_domain(domain: str) -> str:
    """Validate one lower-cased ASCII domain with email-validator, remembering the verdict."""
    cached = _domain_cache.get(domain)
    if cached is None:
        try:
            result = validate_email(f"a@{domain}", check_deliverability=False)
            cached = str(result.domain).lower()
        except EmailNotValidError as exc:
            cached = InvalidEmail(str(exc))
        if len(_domain_cache) >= _DOMAIN_CACHE_MAX:
            _domain_cache.clear()
        _domain_cache[domain] = cached
    if isinstance(cached, InvalidEmail):
        raise cached
    return cached


def normalize_email(value: str) -> str:
    """Return ``value`` as a normalised address or raise :class:`InvalidEmail`."""
    text = value.strip()
    if text.endswith(">") and "<" in text:
        text = text[text.rindex("<") + 1 : -1].strip()
    if not text:
        raise InvalidEmail("an email address cannot be empty")
    lowered = text.lower()
    if lowered.isascii():
        match = _FAST_EMAIL.fullmatch(lowered)
        if match is not None and len(lowered) <= MAX_EMAIL_LENGTH and len(match[1]) <= 64:
            domain = match[2]
            if "xn--" not in domain:
                return f"{match[1]}@{_check_domain(domain)}"
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    if len(str(result.local_part)) > 64:
        raise InvalidEmail("the part before the @-sign is longer than 64 characters")
    return str(result.normalized).lower()


def is_valid_email(value: str) -> bool:
    try:
        normalize_email(value)
    except InvalidEmail:
        return False
    return True


_PHONE_SEPARATORS = str.maketrans("", "", " \t-.()/\u00a0")
_INTERNATIONAL = re.compile(r"\+[1-9]\d{5,16}")


def normalize_country_code(value: str | None) -> str | None:
    """Two-letter ISO country code, upper-cased; None when empty. Raises ValueError."""
    if value is None:
        return None
    code = value.strip().upper()
    if not code:
        return None
    if len(code) != 2 or not code.isalpha() or not code.isascii():
        raise ValueError(f"expected a two-letter country code like 'FR', got {value!r}")
    return code


def parse_phone(value: str, country_code: str | None = None) -> tuple[str, bool]:
    """``(stored value, valid)``: E.164 when valid, else the number as entered (stripped)."""
    text = value.strip()
    if not text:
        return "", False
    return _parse_phone(text, (country_code or "").upper() or None)


@lru_cache(maxsize=65_536)
def _parse_phone(text: str, region: str | None) -> tuple[str, bool]:
    compact = text.translate(_PHONE_SEPARATORS)
    if compact.startswith("00") and compact[2:].isdigit():
        compact = "+" + compact[2:]
    if region is not None and compact.isdigit():
        national_prefix, country = _national_prefix(region)
        if country:
            if national_prefix and compact.startswith(national_prefix):
                compact = compact[len(national_prefix) :]
            compact = f"+{country}{compact}"
    if _INTERNATIONAL.fullmatch(compact):
        fast = _fast_international(compact)
        if fast is not None:
            return fast, True
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return text, False
    if not phonenumbers.is_valid_number(number):
        return text, False
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), True


def _fast_international(compact: str) -> str | None:
    """E.164 for ``+<digits>`` input that is valid exactly as written, else None.

    Skips the general parser; anything it is not sure about (a national prefix written
    after the country code, an invalid number) goes back to ``phonenumbers.parse``.
    """
    digits = compact[1:]
    for size in (1, 2, 3):
        country = int(digits[:size])
        if country in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    if not national:
        return None
    prefix = _national_prefix_pattern(country)
    if prefix is not None:
        match = prefix.match(national)
        if match is not None and match.end() > 0:
            return None
    valid = _is_valid_national(country, national)
    if valid is None:  # a case the shortcut does not cover: ask phonenumbers
        number = PhoneNumber(country_code=country, national_number=int(national))
        if national.startswith("0") and len(national) > 1:
            number.italian_leading_zero = True
            zeros = len(national) - len(national.lstrip("0"))
            if zeros > 1:
                number.number_of_leading_zeros = zeros
        valid = phonenumbers.is_valid_number(number)
    return compact if valid else None


_NUMBER_TYPES = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
    "voicemail", "fixed_line", "mobile",
)  # fmt: skip
_Desc = tuple[frozenset[int], re.Pattern[str]]


def _desc(desc: Any) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern)


def _matches(desc: _Desc | None, nsn: str) -> bool:
    if desc is None:
        return False
    lengths, pattern = desc
    if lengths and len(nsn) not in lengths:
        return False
    return pattern.fullmatch(nsn) is not None


@lru_cache(maxsize=512)
def _region_rules(region: str) -> tuple[re.Pattern[str] | None, _Desc | None, tuple[_Desc, ...]]:
    """(leading digits, general description, type descriptions) of a region's metadata."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    leading = re.compile(metadata.leading_digits) if metadata.leading_digits else None
    types = tuple(d for d in (_desc(getattr(metadata, n)) for n in _NUMBER_TYPES) if d)
    return leading, _desc(metadata.general_desc), types


def _valid_for_region(region: str, nsn: str) -> bool:
    _leading, general, types = _region_rules(region)
    return _matches(general, nsn) and any(_matches(d, nsn) for d in types)


def _is_valid_national(country: int, nsn: str) -> bool | None:
    """``phonenumbers.is_valid_number`` for a national significant number, with compiled
    per-region rules (same metadata, same order of checks); None when not covered."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country)
    if not regions or "001" in regions:
        return None
    if len(regions) == 1:
        return _valid_for_region(regions[0], nsn)
    for region in regions:  # as phonenumbers picks the region of a shared calling code
        if phonenumbers.PhoneMetadata.metadata_for_region(region) is None:
            continue
        leading = _region_rules(region)[0]
        if leading is not None:
            if leading.match(nsn):
                return _valid_for_region(region, nsn)
        elif _valid_for_region(region, nsn):
            return True
    return False


@lru_cache(maxsize=512)
def _national_prefix_pattern(country: int) -> re.Pattern[str] | None:
    region = phonenumbers.region_code_for_country_code(country)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country, region)
    if metadata is None:
        return None
    pattern = metadata.national_prefix_for_parsing or metadata.national_prefix
    return re.compile(pattern) if pattern else None


_NO_FAST_PATH = ("", 0)


@lru_cache(maxsize=512)
def _national_prefix(region: str) -> tuple[str, int]:
    """A region's plain national prefix and calling code, or ``("", 0)`` when stripping it
    takes more than removing a fixed string (those numbers go through the full parser)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None:
        return _NO_FAST_PATH
    if metadata.national_prefix_transform_rule:
        return _NO_FAST_PATH
    prefix = metadata.national_prefix_for_parsing or metadata.national_prefix or ""
    if prefix and not prefix.isdigit():
        return _NO_FAST_PATH
    return prefix, int(metadata.country_code)
