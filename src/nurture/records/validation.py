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
(cached); numbers in international form, or national form in a country with a plain
national prefix, skip ``phonenumbers.parse`` and are checked against phonenumbers' own
metadata compiled once per country (a test holds the shortcut to phonenumbers' answers).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from phonenumbers import PhoneNumberFormat
from phonenumbers.phonenumberutil import NumberParseException

MAX_EMAIL_LENGTH = 254

#: whether addresses at special-use domains (``.test``, ``.example``'s siblings ``.local``,
#: ``.localhost``, ``.invalid``, ``.onion``, ``.arpa``) are accepted; set from
#: ``NURTURE_ALLOW_SPECIAL_USE_DOMAINS`` (see :func:`allow_special_use_domains`)
_allow_special_use = False


def allow_special_use_domains(allowed: bool) -> None:
    """Accept (or refuse, the default) addresses at special-use domains, process-wide."""
    global _allow_special_use
    if allowed != _allow_special_use:
        _domain_cache.clear()
    _allow_special_use = allowed


def _stand_in(domain: str) -> str | None:
    """``domain`` with a special-use suffix swapped for an ordinary one (same syntax rules),
    when special-use domains are allowed; None otherwise."""
    if not _allow_special_use:
        return None
    lowered = domain.lower().rstrip(".")
    for name in SPECIAL_USE_DOMAIN_NAMES:
        if lowered == name:
            return "stand-in.example"
        if lowered.endswith("." + name):
            return lowered[: -len(name)] + "example"
    return None


class InvalidEmail(ValueError):
    """The value is not a syntactically valid email address; the message says why."""


_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_FAST_EMAIL = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+[a-z][a-z0-9-]*[a-z0-9])")
_domain_cache: dict[str, tuple[bool, str]] = {}  # domain -> (valid, normalised or reason)
_DOMAIN_CACHE_MAX = 100_000


def _check_domain(domain: str) -> str:
    """Validate one lower-cased ASCII domain with email-validator, remembering the verdict."""
    cached = _domain_cache.get(domain)
    if cached is None:
        stand_in = _stand_in(domain)
        try:
            result = validate_email(f"a@{stand_in or domain}", check_deliverability=False)
            cached = (True, domain if stand_in else str(result.domain).lower())
        except EmailNotValidError as exc:
            cached = (False, str(exc))
        if len(_domain_cache) >= _DOMAIN_CACHE_MAX:
            _domain_cache.clear()
        _domain_cache[domain] = cached
    valid, text = cached
    if not valid:
        raise InvalidEmail(text)
    return text


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
    local, at, domain = text.rpartition("@")
    stand_in = _stand_in(domain) if at else None
    try:
        result = validate_email(
            f"{local}@{stand_in}" if stand_in else text, check_deliverability=False
        )
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    if len(str(result.local_part)) > 64:
        raise InvalidEmail("the part before the @-sign is longer than 64 characters")
    if stand_in:
        return f"{result.local_part}@{domain.lower().rstrip('.')}".lower()
    return str(result.normalized).lower()


def is_valid_email(value: str) -> bool:
    try:
        normalize_email(value)
    except InvalidEmail:
        return False
    return True


_PHONE_SEPARATORS = str.maketrans("", "", " \t-.()/\u00a0")


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


def parse_stripped_phone(text: str, region: str | None) -> tuple[str, bool]:
    """:func:`parse_phone` for a non-empty stripped number and an upper-case region."""
    return _parse_phone(text, region)


@lru_cache(maxsize=65_536)
def _parse_phone(text: str, region: str | None) -> tuple[str, bool]:
    compact = text.translate(_PHONE_SEPARATORS)
    if compact.isdigit():
        if region is not None:
            verdict = _fast_national(compact, region)
            if verdict is not None:
                return verdict if verdict[1] else (text, False)
    elif compact[:1] == "+" and compact[1:].isdigit() and 6 <= len(compact) <= 18:
        digits = compact[1:]
        for size in (1, 2, 3):
            country = _CALLING_CODES.get(digits[:size])
            if country is not None:
                valid = _checker(country)(digits[size:])
                if valid is True:
                    return compact, True
                if valid is False:
                    return text, False
                break
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return text, False
    if not phonenumbers.is_valid_number(number):
        return text, False
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), True


def _fast_national(digits: str, region: str) -> tuple[str, bool] | None:
    """``(E.164, True)`` or ``("", False)`` for digits dialled inside ``region``, decided
    as ``phonenumbers.parse`` would; None when only the full parser can tell (dialled
    abroad, a national prefix that rewrites the number)."""
    rules = _national_rules(region)
    if rules is None:
        return None
    if rules.idd is not None and rules.idd.match(digits):
        return None
    nsn, stripped = digits, False
    if rules.prefix is not None:
        match = rules.prefix.match(digits)
        if match is not None:
            groups = match.groups()
            if rules.transform and (not groups or groups[-1] is not None):
                return None
            if match.end() > 0:
                nsn, stripped = digits[match.end() :], True
    valid = _checker(rules.country)(nsn)
    if valid is None:
        return None
    if not stripped:
        return (f"+{rules.country}{nsn}", True) if valid else ("", False)
    if rules.keeps_stripped(digits, nsn):  # phonenumbers strips the prefix as we did
        return (f"+{rules.country}{nsn}", True) if valid else ("", False)
    return None


@dataclass(frozen=True)
class _NationalRules:
    """What ``phonenumbers.parse`` needs to read a number dialled inside a region."""

    country: int
    prefix: re.Pattern[str] | None  # national_prefix_for_parsing
    transform: bool  # the prefix rule rewrites the number
    idd: re.Pattern[str] | None  # international dialling prefix
    general: re.Pattern[str] | None
    lengths: tuple[int, ...]
    local_lengths: frozenset[int]

    def _viable(self, number: str) -> bool:
        return self.general is not None and self.general.fullmatch(number) is not None

    def keeps_stripped(self, original: str, stripped: str) -> bool:
        """Whether phonenumbers keeps the number with its national prefix removed."""
        if self._viable(original) and not self._viable(stripped):
            return False
        size = len(stripped)
        if not self.lengths or self.lengths[0] == -1 or size in self.local_lengths:
            return False
        if size < self.lengths[0]:
            return False  # too short
        return size == self.lengths[0] or size > self.lengths[-1] or size in self.lengths


_CALLING_CODES: dict[str, int] = {str(c): c for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}


@lru_cache(maxsize=512)
def _national_rules(region: str) -> _NationalRules | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None:
        return None
    general = metadata.general_desc
    pattern = general.national_number_pattern if general is not None else None
    prefix = metadata.national_prefix_for_parsing
    return _NationalRules(
        country=int(metadata.country_code),
        prefix=re.compile(prefix) if prefix else None,
        transform=bool(metadata.national_prefix_transform_rule),
        idd=re.compile(metadata.international_prefix) if metadata.international_prefix else None,
        general=re.compile(pattern) if pattern else None,
        lengths=tuple(general.possible_length or ()) if general is not None else (),
        local_lengths=frozenset(general.possible_length_local_only or ())
        if general is not None
        else frozenset(),
    )


# The types phonenumbers tries; a number is valid when it fits the general description
# and any of them.
_NUMBER_TYPES = (
    "mobile", "fixed_line", "premium_rate", "toll_free", "shared_cost", "voip",
    "personal_number", "pager", "uan", "voicemail",
)  # fmt: skip
_Check = Callable[[str], "bool | None"]
_checkers: dict[int, _Check] = {}


def _unsure(_nsn: str) -> bool | None:
    return None


def _checker(country: int) -> _Check:
    """``is_valid_number`` for the national significant numbers of a calling code.

    Built once per calling code from phonenumbers' own metadata, with the checks it makes
    in the same order, but with one combined pattern per number length. Returns None for
    what it does not cover (a national prefix written after the calling code,
    non-geographic calling codes), and the caller asks phonenumbers.
    """
    check = _checkers.get(country)
    if check is None:
        check = _build_checker(country)
        _checkers[country] = check
    return check


def _build_checker(country: int) -> _Check:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country)
    if not regions or "001" in regions:
        return _unsure
    main = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country, phonenumbers.region_code_for_country_code(country)
    )
    prefix_text = (main.national_prefix_for_parsing or main.national_prefix) if main else None
    guard = re.compile(prefix_text) if prefix_text else None
    per_region = [_region_check(r) for r in regions]

    def check(nsn: str) -> bool | None:
        if not nsn:
            return None
        if guard is not None:
            match = guard.match(nsn)
            if match is not None and match.end() > 0:
                return None
        if len(per_region) == 1:
            return per_region[0][1](nsn)
        for leading, valid_for in per_region:  # how phonenumbers picks the region
            if leading is not None:
                if leading.match(nsn):
                    return valid_for(nsn)
            elif valid_for(nsn):
                return True
        return False

    return check


def _region_check(region: str) -> tuple[re.Pattern[str] | None, Callable[[str], bool]]:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None, lambda _nsn: False
    leading = re.compile(metadata.leading_digits) if metadata.leading_digits else None
    general = metadata.general_desc
    if general is None or not general.national_number_pattern:
        return leading, lambda _nsn: False
    general_lengths = frozenset(general.possible_length or ())
    general_re = re.compile(general.national_number_pattern)
    types = [
        (frozenset(d.possible_length or ()), d.national_number_pattern)
        for d in (getattr(metadata, name) for name in _NUMBER_TYPES)
        if d is not None and d.national_number_pattern
    ]
    by_length: dict[int, re.Pattern[str] | None] = {}

    def combined(length: int) -> re.Pattern[str] | None:
        if length not in by_length:
            parts = [f"(?:{p})" for lengths, p in types if not lengths or length in lengths]
            by_length[length] = re.compile("|".join(parts)) if parts else None
        return by_length[length]

    def valid(nsn: str) -> bool:
        length = len(nsn)
        if general_lengths and length not in general_lengths:
            return False
        if general_re.fullmatch(nsn) is None:
            return False
        pattern = combined(length)
        return pattern is not None and pattern.fullmatch(nsn) is not None

    return leading, valid
