"""Email and phone normalisation (no database)."""

from __future__ import annotations

import random
from pathlib import Path

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from nurture.records.validation import (
    InvalidEmail,
    is_valid_email,
    normalize_country_code,
    normalize_email,
    parse_phone,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("John.Doe@EXAMPLE.com", "john.doe@example.com"),
        ("  ann@example.org \n", "ann@example.org"),
        ("Ann Smith <Ann@Example.org>", "ann@example.org"),
        ("user@Bücher.DE", "user@bücher.de"),
        ("user@xn--bcher-kva.de", "user@bücher.de"),
        ("Jöhn@EXAMPLE.com", "jöhn@example.com"),
        ("first+tag@sub.domain.co.uk", "first+tag@sub.domain.co.uk"),
    ],
)
def test_emails_are_normalised(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


def test_idn_domain_in_unicode_and_punycode_normalise_to_the_same_address() -> None:
    assert normalize_email("a@BÜCHER.de") == normalize_email("a@xn--bcher-kva.de")


@pytest.mark.parametrize(
    "raw",
    ["", "plainaddress", "a..b@example.com", "a@b", "@example.com", "a b@example.com",
     "a@-example.com", "a@localhost", "a@example..com", "x" * 65 + "@example.com"],
)  # fmt: skip
def test_invalid_emails_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidEmail) as info:
        normalize_email(raw)
    assert str(info.value)


def test_fast_path_and_email_validator_agree_on_the_domain_verdict() -> None:
    # The same domain seen twice (cached) gives the same answer.
    for _ in range(2):
        with pytest.raises(InvalidEmail):
            normalize_email("a@example.invalid")
        assert normalize_email("a@Example.COM") == "a@example.com"


def test_phone_parsed_to_e164_with_the_record_country() -> None:
    assert parse_phone("06 12 34 56 78", "FR") == ("+33612345678", True)
    assert parse_phone("(212) 555-0123", "us") == ("+12125550123", True)
    assert parse_phone("+44 20 7946 0958", None) == ("+442079460958", True)
    assert parse_phone("0044 20 7946 0958", "FR") == ("+442079460958", True)


def test_invalid_phone_is_kept_as_entered_and_flagged() -> None:
    assert parse_phone(" 12-34 ", "FR") == ("12-34", False)
    assert parse_phone("call me maybe", "FR") == ("call me maybe", False)
    # A national number without a country cannot be resolved.
    assert parse_phone("06 12 34 56 78", None) == ("06 12 34 56 78", False)


def test_country_code_normalised() -> None:
    assert normalize_country_code(" fr ") == "FR"
    assert normalize_country_code("") is None
    with pytest.raises(ValueError):
        normalize_country_code("FRA")


def test_phone_fast_path_gives_the_same_answer_as_phonenumbers() -> None:
    """Our shortcuts (E.164 input, plain national prefixes) must agree with phonenumbers
    on valid and invalid numbers alike, whatever the default region."""
    rng = random.Random(7)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    checked = 0
    for region in rng.sample(regions, 80):
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for fmt in (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL):
                text = phonenumbers.format_number(example, fmt)
                for variant in range(8):
                    chars = list(text)
                    for i in [i for i, c in enumerate(text) if c.isdigit()][-(1 + variant % 5) :]:
                        chars[i] = rng.choice("0123456789")
                    sample = "".join(chars)
                    if variant == 3:
                        sample = sample[:-1]  # too short
                    elif variant == 5:
                        sample += "7"  # too long
                    elif variant == 6 and sample.startswith("+"):
                        sample = "00" + sample[1:]  # dialled with an IDD prefix
                    elif variant == 7 and not sample.startswith("+"):
                        sample = "0" + sample  # an extra (or a first) trunk prefix
                    sample = sample.strip()
                    for default in (region, None, "US", "GB", "BR", "AR"):
                        try:
                            number = phonenumbers.parse(sample, default)
                            ok = phonenumbers.is_valid_number(number)
                        except phonenumbers.NumberParseException:
                            ok = False
                        expected = (
                            (phonenumbers.format_number(number, PhoneNumberFormat.E164), True)
                            if ok
                            else (sample, False)
                        )
                        assert parse_phone(sample, default) == expected, (region, sample, default)
                        checked += 1
    assert checked > 3000


def test_special_use_domains_only_with_the_setting(tmp_path: Path) -> None:
    from nurture.config import load_settings
    from nurture.records.validation import allow_special_use_domains

    addresses = ("ann@mta.test", "Bob@Host.Local", "eve@bücher.test")
    for address in addresses:
        assert not is_valid_email(address)
    settings = load_settings({"NURTURE_DATA_DIR": str(tmp_path), "NURTURE_SECRET_KEY": "k" * 20})
    assert settings.allow_special_use_domains is False
    settings = load_settings(
        {
            "NURTURE_DATA_DIR": str(tmp_path),
            "NURTURE_SECRET_KEY": "k" * 20,
            "NURTURE_ALLOW_SPECIAL_USE_DOMAINS": "true",
        }
    )
    assert settings.allow_special_use_domains is True
    allow_special_use_domains(True)
    try:
        assert normalize_email("ann@mta.test") == "ann@mta.test"
        assert normalize_email("Bob@Host.Local") == "bob@host.local"
        assert normalize_email("eve@bücher.test") == "eve@bücher.test"
        assert not is_valid_email("not an address@x.test")
    finally:
        allow_special_use_domains(False)
    assert not is_valid_email("ann@mta.test")
