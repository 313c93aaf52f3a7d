"""Templates: Jinja2 in an immutable sandbox, checked against the model registry.

Shared by email templates, SMS templates and transactional actions; it sits below the
channels and actions and imports none of them.

What a template can do:

* print fields of the target record and of related records — ``{{ record.name }}``,
  ``{{ record.salesperson.name }}`` — with defaults (``{{ record.name | default('there') }}``;
  ``default`` also applies to empty values and ``None``);
* loop over to-many relations (``{% for tag in record.tags %}{{ tag.name }}{% endfor %}``),
  use ``if``/``set``/``with``/``filter`` blocks, a short whitelist of filters and tests;
* use the context variables the sender provides (``unsubscribe_url``, ``view_url``).

Every render runs under a :class:`RenderBudget` (loop iterations, output size, wall-clock
time per message; :data:`SEND_BUDGET` when sending, the stricter :data:`PREVIEW_BUDGET` for
previews of unsaved templates): loops are charged their length before they start, so three
nested loops of 1,000 items stop at once, and the clock is checked at every loop item,
every operator and every piece of output, so no template holds a worker or a web thread
for longer than the budget's time. A template whose literal loops alone exceed the budget
is refused at save time. Going over the budget raises :class:`TemplateRenderError` (one
message fails, with the reason); a compiled template that once ran out of *time* fails
its next renders at once instead of spending the budget again for each record.

What it cannot do: call anything (no function or method calls at all), read any attribute
that is not a registered field (the record is a read-only proxy over the registry, never
the ORM object: no ``__class__``, ``metadata``, ``_sa_instance_state``, no hidden fields),
reach globals (``range``, ``cycler``, ``joiner``, ``namespace``, ``lipsum``, ``dict`` are
removed), include or import other templates, or build huge values (``'x' * 10**9``).

:func:`validate_template` runs at save time: a syntax error, an unknown filter, an unknown
variable or field, a dynamic field access, a call or an unsupported tag is reported as a
:class:`TemplateValidationError` (a :class:`~nurture.errors.ValidationError`) naming the field
(``subject``, ``preview``, ``html``), the line and the column — never at send time.

Modules:

* :mod:`.errors` — save-time problems and render failures;
* :mod:`.budget` — the render budget and its per-message meter;
* :mod:`.proxies` — read-only record proxies over the model registry;
* :mod:`.sandbox` — the sandboxed environment (filters, tests, bounded operators and loops);
* :mod:`.checking` — save-time checking of a source against the registry (line and column);
* :mod:`.html` — CSS inlining, the hidden preheader, HTML → plain text (once per template
  when it can be exact);
* :mod:`.compiled` — an email template (subject, preview, HTML) compiled once and rendered
  for many records (:func:`compile_template`, :func:`validate_template`,
  :func:`render_preview`).
"""

from nurture.templating.budget import (
    MAX_OUTPUT_CHARS,
    PREVIEW_BUDGET,
    SEND_BUDGET,
    RenderBudget,
    metered,
    render_budget,
)
from nurture.templating.checking import check_source
from nurture.templating.compiled import (
    CONTEXT_NAMES,
    CompiledTemplate,
    EmailTemplate,
    RenderedEmail,
    compile_template,
    render_preview,
    target_model,
    validate_template,
)
from nurture.templating.errors import (
    RenderBudgetExceeded,
    TemplateProblem,
    TemplateRenderError,
    TemplateValidationError,
)
from nurture.templating.html import add_preheader, html_to_text, inline_css, text_template_source
from nurture.templating.proxies import RecordListProxy, RecordProxy
from nurture.templating.sandbox import EmailSandbox

__all__ = [
    "CONTEXT_NAMES",
    "MAX_OUTPUT_CHARS",
    "PREVIEW_BUDGET",
    "SEND_BUDGET",
    "CompiledTemplate",
    "EmailSandbox",
    "EmailTemplate",
    "RecordListProxy",
    "RecordProxy",
    "RenderBudget",
    "RenderBudgetExceeded",
    "RenderedEmail",
    "TemplateProblem",
    "TemplateRenderError",
    "TemplateValidationError",
    "add_preheader",
    "check_source",
    "compile_template",
    "target_model",
    "html_to_text",
    "inline_css",
    "metered",
    "render_budget",
    "render_preview",
    "text_template_source",
    "validate_template",
]
