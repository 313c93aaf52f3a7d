"""An email template compiled once and rendered for many records.

:func:`compile_template` validates a template's subject, preview text and HTML (raising
:class:`~nurture.templating.errors.TemplateValidationError` with the field, line and column)
and compiles them; :meth:`CompiledTemplate.render` produces the subject, the HTML (CSS
inlined with css-inline, preview text as a hidden preheader), the plain-text part and the
preview text, all under one render budget per message. Email templates and transactional
email actions use it; the engine should keep the :class:`CompiledTemplate` of an activity for
the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import ChainableUndefined, Template
from jinja2.exceptions import SecurityError, TemplateError

from nurture.errors import ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.registry import ModelDef, Registry, RegistryError
from nurture.templating.budget import (
    MAX_OUTPUT_CHARS,
    PREVIEW_BUDGET,
    active_meter,
    metered,
    render_budget,
)
from nurture.templating.checking import check_source
from nurture.templating.errors import (
    RenderBudgetExceeded,
    TemplateProblem,
    TemplateRenderError,
    TemplateValidationError,
)
from nurture.templating.html import (
    add_preheader,
    html_to_text,
    inline_css,
    swap_text_links,
    text_template_source,
    tidy_text,
)
from nurture.templating.proxies import RecordProxy
from nurture.templating.sandbox import EmailSandbox

# Variables a template may use besides ``record`` (the sender fills them in).
CONTEXT_NAMES: frozenset[str] = frozenset({"unsubscribe_url", "view_url"})

TemplateField = Literal["subject", "preview", "html"]

_HTML_ENV = EmailSandbox(autoescape=True)
_TEXT_ENV = EmailSandbox(autoescape=False)


@dataclass(frozen=True)
class EmailTemplate:
    subject: str
    html: str
    preview: str = ""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preview: str
    html: str  # a full document, CSS inlined, preheader included, links as rewritten
    text: str  # the plain-text part, derived from the HTML (no preheader, no pixel)


def _compile_text(
    html_source: str, model: ModelDef, registry: Registry, names: frozenset[str]
) -> Template | None:
    source = text_template_source(html_source)
    if source is None:
        return None
    compiled, problems = check_source(_TEXT_ENV, source, "text", model, registry, names)
    return compiled if not problems else None  # defence in depth: same checks as the HTML


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass
class CompiledTemplate:
    """A validated template, compiled once and rendered for many records."""

    model: ModelDef
    registry: Registry
    subject: Template
    preview: Template
    html: Template
    names: frozenset[str] = field(default=CONTEXT_NAMES)
    text: Template | None = None  # the plain-text part as a template (see text_template_source)

    timed_out: str | None = None  # the reason, once a render ran out of time

    def _run(self, template: Template, context: Mapping[str, Any], what: str) -> str:
        size = 0
        parts: list[str] = []
        meter = active_meter()
        meter.iterations = 0  # loops are budgeted per part (as checked at save), time per message
        limit = min(MAX_OUTPUT_CHARS, meter.budget.output_chars)
        try:
            for chunk in template.generate(context):
                size += len(chunk)
                if size > limit:
                    raise RenderBudgetExceeded(f"{what}: output larger than {limit} characters")
                meter.tick()
                parts.append(chunk)
        except RenderBudgetExceeded as exc:
            message = exc.message if exc.message.startswith(f"{what}:") else f"{what}: {exc.message}"
            if exc.timed_out:
                self.timed_out = message
            raise RenderBudgetExceeded(message, timed_out=exc.timed_out) from None
        except TemplateRenderError:
            raise
        except SecurityError as exc:
            raise TemplateRenderError(f"{what}: not allowed: {exc}") from None
        except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise TemplateRenderError(f"{what}: {type(exc).__name__}: {exc}") from None
        return "".join(parts)

    def render(
        self,
        record: Any,
        *,
        context: Mapping[str, Any] | None = None,
        link_rewriter: Callable[[str], str] | None = None,
        text_links: Callable[[str], str | None] | None = None,
    ) -> RenderedEmail:
        """Render for ``record`` (an ORM object, a mapping of field values, or None).

        ``link_rewriter`` gets the CSS-inlined HTML and returns it with tracked links and the
        open pixel (see :mod:`.links`). The plain-text part comes from the template's text
        form when it has one, with each link URL passed through ``text_links`` (called after
        ``link_rewriter``; returns the tracked URL, or None to keep it); otherwise it is
        derived from the final HTML, so its links are the tracked ones either way.
        """
        if self.timed_out is not None:
            raise RenderBudgetExceeded(f"{self.timed_out} on an earlier message; not tried again")
        with metered():
            return self._render(record, context, link_rewriter, text_links)

    def _render(
        self,
        record: Any,
        context: Mapping[str, Any] | None,
        link_rewriter: Callable[[str], str] | None,
        text_links: Callable[[str], str | None] | None,
    ) -> RenderedEmail:
        extra = dict(context or {})
        unknown = set(extra) - self.names
        if unknown:
            raise ValueError(f"unknown template context variables: {sorted(unknown)}")
        values: dict[str, Any] = {name: ChainableUndefined(name=name) for name in self.names}
        values.update(extra)
        values["record"] = RecordProxy(self.registry, self.model, record)
        subject = _one_line(self._run(self.subject, values, "subject"))
        preview = _one_line(self._run(self.preview, values, "preview"))
        body = self._run(self.html, values, "html")
        try:
            html = inline_css(body)
        except Exception as exc:  # css-inline raises on input it cannot handle
            raise TemplateRenderError(f"html: CSS inlining failed: {exc}") from None
        if link_rewriter is not None:
            html = link_rewriter(html)
        if self.text is not None:
            text = tidy_text(self._run(self.text, values, "text"))
            if text_links is not None:
                text = swap_text_links(text, text_links)
        else:
            text = html_to_text(html)
        return RenderedEmail(subject=subject, preview=preview, html=add_preheader(html, preview), text=text)


def target_model(model: str | ModelDef, registry: Registry | None = None) -> tuple[Registry, ModelDef]:
    """The registry (default: the application's) and the definition of the target ``model``
    a template is checked against; an unknown model is a :class:`ValidationError` on
    ``model``."""
    reg = registry if registry is not None else REGISTRY
    try:
        return reg, (reg.get(model) if isinstance(model, str) else model)
    except RegistryError as exc:
        raise ValidationError(str(exc), field="model") from None


def compile_template(
    model: str | ModelDef,
    template: EmailTemplate,
    *,
    registry: Registry | None = None,
    names: frozenset[str] = CONTEXT_NAMES,
) -> CompiledTemplate:
    """Validate (raising :class:`TemplateValidationError`) and compile a template."""
    reg, mdef = target_model(model, registry)
    problems: list[TemplateProblem] = []
    compiled: dict[str, Template | None] = {}
    for name, source, env in (
        ("subject", template.subject, _TEXT_ENV),
        ("preview", template.preview, _TEXT_ENV),
        ("html", template.html, _HTML_ENV),
    ):
        tpl, found = check_source(env, source, name, mdef, reg, names)
        compiled[name] = tpl
        problems.extend(found)
    if not template.subject.strip():
        problems.insert(0, TemplateProblem("subject", 1, 1, "the subject is required"))
    if problems:
        raise TemplateValidationError(problems)
    subject, preview, html = compiled["subject"], compiled["preview"], compiled["html"]
    assert subject is not None and preview is not None and html is not None
    text = _compile_text(template.html, mdef, reg, names)
    return CompiledTemplate(mdef, reg, subject, preview, html, names, text)


def validate_template(
    model: str | ModelDef,
    subject: str,
    html: str,
    preview: str = "",
    *,
    registry: Registry | None = None,
    names: frozenset[str] = CONTEXT_NAMES,
) -> None:
    """Save-time check; raises :class:`TemplateValidationError` with line and column."""
    compile_template(model, EmailTemplate(subject, html, preview), registry=registry, names=names)


def render_preview(
    model: str | ModelDef,
    template: EmailTemplate,
    record: Any = None,
    *,
    context: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> RenderedEmail:
    """Preview with any record (or none: every field empty, so defaults show), under the
    preview budget."""
    compiled = compile_template(model, template, registry=registry)
    with render_budget(PREVIEW_BUDGET):
        return compiled.render(record, context=context)
