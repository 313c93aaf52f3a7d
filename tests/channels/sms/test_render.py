"""SMS templates: placeholders in the email sandbox, short links, opt-out text, E.164."""

from __future__ import annotations

import pytest

from nurture.channels.sms.render import (
    InvalidNumber,
    compile_sms,
    normalize_number,
    recipient_number,
    shorten_links,
    validate_sms_template,
)
from nurture.records.catalog import REGISTRY
from nurture.templating import TemplateRenderError, TemplateValidationError

CONTACT = {"name": "Zoé", "email": "z@x.io", "country_code": "FR", "mobile": None, "phone": None}


def test_placeholders_and_defaults() -> None:
    sms = compile_sms("contact", "Hi {{ record.name | default('there') }}, see you in {{ record.city | default('town') }}!")
    assert sms.render(CONTACT).body == "Hi Zoé, see you in town!"
    assert sms.render({}).body == "Hi there, see you in town!"


def test_related_fields_and_newlines_are_kept() -> None:
    sms = compile_sms("contact", "Hello {{ record.name }}\nYour rep: {{ record.salesperson.name | default('us') }}")
    out = sms.render({"name": "A", "salesperson": {"name": "Bob"}})
    assert out.body == "Hello A\nYour rep: Bob"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("{{ record.nope }}", "unknown field 'nope'"),
        ("{{ record.name.__class__ }}", "internal attribute"),
        ("{{ record.name.upper() }}", "calling functions"),
        ("{% include 'x' %}", "not supported"),
        ("{{ record.name ", "line 1"),
        ("   ", "the message is required"),
    ],
)
def test_invalid_templates_are_refused_on_body(body: str, needle: str) -> None:
    with pytest.raises(TemplateValidationError) as info:
        compile_sms("contact", body)
    assert info.value.field == "body"
    assert needle in str(info.value)


def test_sandbox_limits_apply_at_render() -> None:
    sms = compile_sms("contact", "{{ 'x' * 2000 }}")
    with pytest.raises(TemplateRenderError):
        sms.render(CONTACT)


def test_validate_returns_segment_count() -> None:
    info = validate_sms_template("contact", "Hello {{ record.name }} 😀")
    assert info.encoding == "ucs2" and info.segments == 1


def test_links_shortened_once_each_and_opt_out_appended_untracked() -> None:
    calls: list[str] = []

    def shorten(url: str) -> str:
        calls.append(url)
        return f"https://n.io/r/{len(calls)}"

    sms = compile_sms(
        "contact",
        "Sale: https://shop.example.com/sale?a=1&b=2. Again (https://shop.example.com/sale?a=1&b=2) "
        "and https://x.example.org/p",
    )
    out = sms.render(CONTACT, shorten=shorten, opt_out_text="STOP: https://n.io/sms/u/abc")
    assert calls == ["https://shop.example.com/sale?a=1&b=2", "https://x.example.org/p"]
    assert out.body == (
        "Sale: https://n.io/r/1. Again (https://n.io/r/1) and https://n.io/r/2\n"
        "STOP: https://n.io/sms/u/abc"
    )
    assert out.segments.encoding == "gsm7"
    assert out.segments.length == len(out.body)


def test_shorten_skips_non_http_and_skip_urls() -> None:
    text = "call tel:+33123 or mailto:a@b.c or https://keep.me/x or http://short.en/y"
    out = shorten_links(text, lambda u: "S", skip_urls={"https://keep.me/x"})
    assert out == "call tel:+33123 or mailto:a@b.c or https://keep.me/x or S"


def test_context_unsubscribe_url() -> None:
    sms = compile_sms("contact", "Bye: {{ unsubscribe_url }}")
    assert sms.render(CONTACT, context={"unsubscribe_url": "https://n.io/u"}).body == "Bye: https://n.io/u"
    with pytest.raises(ValueError):
        sms.render(CONTACT, context={"other": 1})


@pytest.mark.parametrize(
    ("number", "country", "expected"),
    [
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", None, "+33612345678"),
        ("0033612345678", "de", "+33612345678"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("07400 123456", "GB", "+447400123456"),
    ],
)
def test_normalize_number(number: str, country: str | None, expected: str) -> None:
    assert normalize_number(number, country) == expected


@pytest.mark.parametrize(("number", "country"), [("12", "FR"), ("0612345678", None), ("abc", "FR"), ("", "FR")])
def test_invalid_numbers(number: str, country: str | None) -> None:
    with pytest.raises(InvalidNumber):
        normalize_number(number, country)


def test_recipient_prefers_mobile_and_uses_record_country() -> None:
    contact = REGISTRY.get("contact")
    record = {"country_code": "FR", "phone": "01 23 45 67 89", "mobile": "06 12 34 56 78"}
    assert recipient_number(contact, record) == "+33612345678"
    record = {"country_code": "FR", "phone": "01 23 45 67 89", "mobile": "999"}
    assert recipient_number(contact, record) == "+33123456789"
    with pytest.raises(InvalidNumber, match="invalid number"):
        recipient_number(contact, {"country_code": "FR", "phone": "12"})
    with pytest.raises(InvalidNumber, match="no phone number"):
        recipient_number(contact, {"country_code": "FR"})
