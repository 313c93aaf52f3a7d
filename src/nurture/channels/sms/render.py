"""SMS templates: placeholders, tracked short links, opt-out text, E.164 recipients.

The template language is the email channel's: the same immutable Jinja2 sandbox, the same
read-only record proxies and the same save-time check against the model registry
(:func:`nurture.templating.compile_template` validates the body as a plain-text
field, so an unknown field, a call or an unsupported tag is refused at save time with its
line and column, reported on the field ``body``).

Rendering produces plain text (no HTML escaping, newlines kept), then:

1. every absolute ``http(s)`` URL in the text is replaced by ``shorten(url)`` (the caller
   stores the URL and returns its tracked short link, as for email; the same URL is
   shortened once per message; ``skip_urls`` are left alone);
2. the optional opt-out text is appended on its own line, after shortening, so the opt-out
   link never counts as a click;
3. the segment count of the final text is computed (:mod:`.segments`).

Recipients are normalised to E.164 with the record's country as the default region
(:func:`nurture.records.validation.parse_phone`); a number that does not parse raises
:class:`InvalidNumber` ("invalid number": the caller cancels the trace with that reason).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, Template
from jinja2.exceptions import SecurityError, TemplateError

from nurture.channels.email.links import is_trackable
from nurture.channels.sms.segments import SegmentInfo, count_segments
from nurture.records.registry import ModelDef, Registry
from nurture.records.validation import normalize_country_code, parse_phone
from nurture.templating import (
    MAX_OUTPUT_CHARS,
    EmailSandbox,
    EmailTemplate,
    RecordProxy,
    TemplateProblem,
    TemplateRenderError,
    TemplateValidationError,
    compile_template,
    target_model,
)

#: variables an SMS template may use besides ``record``
SMS_CONTEXT_NAMES: frozenset[str] = frozenset({"unsubscribe_url"})
#: the longest text an SMS template may produce (10 parts of UCS-2 is already 670 units)
MAX_SMS_CHARS = 1600

Shorten = Callable[[str], str]

_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?'\""
_TEXT_ENV = EmailSandbox(autoescape=False)


class InvalidNumber(ValueError):
    """The record has no phone number that parses; ``str()`` is the trace's reason."""


# --------------------------------------------------------------------------- numbers


def normalize_number(number: str | None, country_code: str | None = None) -> str:
    """``number`` in E.164 (``+33612345678``), using ``country_code`` for national numbers."""
    if not number or not number.strip():
        raise InvalidNumber("no phone number")
    try:
        country = normalize_country_code(country_code)
    except ValueError:
        country = None
    stored, valid = parse_phone(number, country)
    if not valid:
        raise InvalidNumber("invalid number")
    return stored


def phone_fields(model: ModelDef) -> tuple[str, ...]:
    """The model's phone fields, mobile numbers first."""
    fields = list(model.phone_fields)
    fields.sort(key=lambda name: 0 if "mobile" in name else 1)
    return tuple(fields)


def _read(record: Any, name: str) -> Any:
    if isinstance(record, Mapping):
        return record.get(name)
    return getattr(record, name, None)


def recipient_number(model: ModelDef, record: Any) -> str:
    """The E.164 number to text for ``record``: its first valid phone field (mobile first).

    Raises :class:`InvalidNumber` "no phone number" when every phone field is empty, and
    "invalid number" when the numbers present do not parse.
    """
    country = _read(record, "country_code")
    seen_any = False
    for name in phone_fields(model):
        value = _read(record, name)
        if not value or not str(value).strip():
            continue
        seen_any = True
        try:
            return normalize_number(str(value), country)
        except InvalidNumber:
            continue
    raise InvalidNumber("invalid number" if seen_any else "no phone number")


# --------------------------------------------------------------------------- links


def _split_url(match: str) -> tuple[str, str]:
    """(url, trailing punctuation that belongs to the sentence, not the URL)."""
    url = match
    tail = ""
    while url:
        last = url[-1]
        if last in _TRAILING or (last == ")" and url.count("(") < url.count(")")):
            tail = last + tail
            url = url[:-1]
            continue
        break
    return url, tail


def shorten_links(text: str, shorten: Shorten, *, skip_urls: Collection[str] = ()) -> str:
    """``text`` with each trackable URL replaced by ``shorten(url)`` (once per distinct URL)."""
    skip = set(skip_urls)
    cache: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        url, tail = _split_url(match.group(0))
        if not is_trackable(url) or url in skip:
            return match.group(0)
        if url not in cache:
            cache[url] = shorten(url)
        return cache[url] + tail

    return _URL.sub(replace, text)


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class RenderedSms:
    body: str
    segments: SegmentInfo


def _problems_on_body(exc: TemplateValidationError) -> TemplateValidationError:
    return TemplateValidationError(
        [TemplateProblem("body", p.line, p.column, p.message) for p in exc.problems]
    )


@dataclass
class CompiledSms:
    """A validated SMS template, compiled once and rendered for many records."""

    model: ModelDef
    registry: Registry
    template: Template
    names: frozenset[str]

    def render_text(self, record: Any, *, context: Mapping[str, Any] | None = None) -> str:
        """The template's text for ``record`` (no link shortening, no opt-out text)."""
        extra = dict(context or {})
        unknown = set(extra) - self.names
        if unknown:
            raise ValueError(f"unknown template context variables: {sorted(unknown)}")
        values: dict[str, Any] = {name: ChainableUndefined(name=name) for name in self.names}
        values.update(extra)
        values["record"] = RecordProxy(self.registry, self.model, record)
        size = 0
        parts: list[str] = []
        try:
            for chunk in self.template.generate(values):
                size += len(chunk)
                if size > min(MAX_OUTPUT_CHARS, MAX_SMS_CHARS):
                    raise TemplateRenderError(
                        f"body: output longer than {MAX_SMS_CHARS} characters"
                    )
                parts.append(chunk)
        except TemplateRenderError:
            raise
        except SecurityError as exc:
            raise TemplateRenderError(f"body: not allowed: {exc}") from None
        except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise TemplateRenderError(f"body: {type(exc).__name__}: {exc}") from None
        return "".join(parts).strip()

    def render(
        self,
        record: Any,
        *,
        context: Mapping[str, Any] | None = None,
        shorten: Shorten | None = None,
        opt_out_text: str | None = None,
        skip_urls: Collection[str] = (),
    ) -> RenderedSms:
        """The message for ``record``: placeholders, tracked links, then the opt-out text."""
        body = self.render_text(record, context=context)
        if shorten is not None:
            body = shorten_links(body, shorten, skip_urls=skip_urls)
        if opt_out_text and opt_out_text.strip():
            body = f"{body}\n{opt_out_text.strip()}" if body else opt_out_text.strip()
        return RenderedSms(body=body, segments=count_segments(body))


def compile_sms(
    model: str | ModelDef,
    body: str,
    *,
    registry: Registry | None = None,
    names: frozenset[str] = SMS_CONTEXT_NAMES,
) -> CompiledSms:
    """Validate (raising :class:`TemplateValidationError` on ``body``) and compile."""
    reg, mdef = target_model(model, registry)
    if not body or not body.strip():
        raise TemplateValidationError([TemplateProblem("body", 1, 1, "the message is required")])
    try:
        # The email validator checks the subject as plain text: the same rules apply here.
        compile_template(mdef, EmailTemplate(subject=body, html=""), registry=reg, names=names)
    except TemplateValidationError as exc:
        raise _problems_on_body(exc) from None
    return CompiledSms(mdef, reg, _TEXT_ENV.from_string(body), names)


def validate_sms_template(
    model: str | ModelDef, body: str, *, registry: Registry | None = None
) -> SegmentInfo:
    """Save-time check of an SMS template; returns the segment count of its source text
    (what the editor shows while typing; the rendered count depends on the record)."""
    compile_sms(model, body, registry=registry)
    return count_segments(body)
