"""Email templates: Jinja2 in an immutable sandbox, checked against the model registry.

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

:meth:`CompiledTemplate.render` produces the subject, the HTML (CSS inlined with css-inline,
preview text as a hidden preheader), the plain-text part (html2text) and the preview text.

The plain-text part is normally derived once per template, not once per message (html2text
is by far the slowest step): :func:`text_template_source` converts the HTML *source* with
every Jinja tag replaced by an inert marker, then puts the tags back, giving a plain-text
template rendered like the others. Templates where that cannot be exact (a block tag inside
an attribute or a ``<style>``, ``{% raw %}``, a numbered list repeated by a loop) fall back
to converting each rendered message.

Compile once per template (:func:`compile_template`) and render many times; the engine
should keep the :class:`CompiledTemplate` of an activity for the whole batch.
"""

from __future__ import annotations

import html as html_lib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import css_inline
import html2text
from jinja2 import (
    ChainableUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    nodes,
    pass_eval_context,
)
from jinja2 import filters as jinja_filters
from jinja2 import tests as jinja_tests
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from nurture.errors import NurtureError, ValidationError
from nurture.records.registry import ModelDef, Registry, RegistryError

# Variables a template may use besides ``record`` (the sender fills them in).
CONTEXT_NAMES: frozenset[str] = frozenset({"unsubscribe_url", "view_url"})
LOOP_ATTRIBUTES: frozenset[str] = frozenset(
    {"index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0",
     "previtem", "nextitem"}
)
MAX_OUTPUT_CHARS = 2_000_000
MAX_SEQUENCE_PRODUCT = 100_000
MAX_EXPONENT = 100
MAX_INT_BITS = 4096


@dataclass(frozen=True)
class RenderBudget:
    """What one message may cost: loop iterations, output characters, seconds."""

    iterations: int = 100_000
    output_chars: int = MAX_OUTPUT_CHARS
    seconds: float = 2.0


#: budget of a message rendered for sending (email, SMS, transactional actions)
SEND_BUDGET = RenderBudget()
#: stricter budget of previews (anyone who may read templates may preview one)
PREVIEW_BUDGET = RenderBudget(seconds=0.5)
_UNSUPPORTED_TAGS: dict[type[nodes.Node], str] = {
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
    nodes.Extends: "extends",
    nodes.Block: "block",
}

TemplateField = Literal["subject", "preview", "html"]


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class TemplateProblem:
    field: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.field}, line {self.line}, column {self.column}: {self.message}"


class TemplateValidationError(ValidationError):
    """One or more problems in a template; the first is the message, all are in ``problems``."""

    code = "invalid_template"

    def __init__(self, problems: Sequence[TemplateProblem]) -> None:
        if not problems:
            raise ValueError("TemplateValidationError needs at least one problem")
        first = problems[0]
        message = str(first)
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem(s))"
        super().__init__(message, field=first.field)
        self.problems: tuple[TemplateProblem, ...] = tuple(problems)
        self.line = first.line
        self.column = first.column


class TemplateRenderError(NurtureError):
    """Rendering failed (a sandbox violation, an output too large, a bad value)."""

    code = "render_failed"


class RenderBudgetExceeded(TemplateRenderError):
    """The render went over its :class:`RenderBudget` (``timed_out``: its time)."""

    code = "render_budget_exceeded"

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _Meter:
    """The budget spent by one render (one message: every part of it)."""

    __slots__ = ("budget", "deadline", "iterations")

    def __init__(self, budget: RenderBudget) -> None:
        self.budget = budget
        self.iterations = 0
        self.deadline = time.monotonic() + budget.seconds

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderBudgetExceeded(
                f"rendering took longer than {self.budget.seconds:g} s (the render budget)",
                timed_out=True,
            )

    def charge(self, count: int) -> None:
        self.iterations += count
        if self.iterations > self.budget.iterations:
            raise RenderBudgetExceeded(
                f"loops ran more than {self.budget.iterations} iterations (the render budget)"
            )
        self.tick()


_BUDGET: ContextVar[RenderBudget] = ContextVar("nurture_render_budget", default=SEND_BUDGET)
_METER: ContextVar[_Meter | None] = ContextVar("nurture_render_meter", default=None)


@contextmanager
def render_budget(budget: RenderBudget) -> Iterator[None]:
    """Render under ``budget`` inside the block (e.g. :data:`PREVIEW_BUDGET`)."""
    token = _BUDGET.set(budget)
    try:
        yield
    finally:
        _BUDGET.reset(token)


@contextmanager
def metered() -> Iterator[_Meter]:
    """One meter for every template rendered inside the block (one message)."""
    current = _METER.get()
    if current is not None:
        yield current
        return
    meter = _Meter(_BUDGET.get())
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def _meter(context: Any) -> _Meter:
    """The active meter, else one per Jinja render context (templates rendered directly)."""
    meter = _METER.get()
    if meter is not None:
        return meter
    found = getattr(context, "_nurture_meter", None)
    if found is None:
        found = _Meter(_BUDGET.get())
        context._nurture_meter = found
    return found


class _CountedLoop:
    """A loop's sequence, charged to the meter before the loop starts, checking the clock
    at every item."""

    __slots__ = ("items", "meter")

    def __init__(self, meter: _Meter, items: Sequence[Any]) -> None:
        self.meter = meter
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        tick = self.meter.tick
        for item in self.items:
            tick()
            yield item


def _tick() -> None:
    meter = _METER.get()
    if meter is not None:
        meter.tick()


# --------------------------------------------------------------------------- record proxies


def _read(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


class RecordProxy:
    """Read-only view of one record: registered fields only, relations followed as proxies.

    Jinja reaches it only through :class:`EmailSandbox` which calls :meth:`_nurture_get`; the
    proxy has no public attributes or methods of its own, and everything Python-internal is
    refused by the sandbox before it gets here.
    """

    __slots__ = ("_nurture_model", "_nurture_obj", "_nurture_registry")
    _nurture_model: ModelDef
    _nurture_obj: Any
    _nurture_registry: Registry

    def __init__(self, registry: Registry, model: ModelDef, obj: Any) -> None:
        object.__setattr__(self, "_nurture_registry", registry)
        object.__setattr__(self, "_nurture_model", model)
        object.__setattr__(self, "_nurture_obj", obj)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("records are read-only in templates")

    def _nurture_get(self, name: str) -> Any:
        model: ModelDef = self._nurture_model
        fdef = model.fields.get(name)
        if fdef is None:
            return ChainableUndefined(hint=f"unknown field {name!r} on {model.name}")
        value = _read(self._nurture_obj, name)
        registry: Registry = self._nurture_registry
        if fdef.is_relation and fdef.relation is not None:
            target = registry.get(fdef.relation)
            if fdef.is_to_many:
                return RecordListProxy(registry, target, list(value or ()))
            if value is None:
                return ChainableUndefined(hint=f"{model.name}.{name} is empty")
            return RecordProxy(registry, target, value)
        if value is None:
            return ChainableUndefined(hint=f"{model.name}.{name} is empty")
        return _scalar(value)

    def __getitem__(self, name: object) -> Any:
        if not isinstance(name, str):
            raise KeyError(name)
        return self._nurture_get(name)

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("a record is not a list; loop over one of its to-many fields")

    def __bool__(self) -> bool:
        return self._nurture_obj is not None

    def __str__(self) -> str:
        model: ModelDef = self._nurture_model
        value = _read(self._nurture_obj, model.rec_name)
        return "" if value is None else str(value)

    def __repr__(self) -> str:
        return f"<record {self._nurture_model.name}>"


class RecordListProxy:
    """Read-only view of a to-many relation: iterable, indexable, printable."""

    __slots__ = ("_nurture_items",)
    _nurture_items: tuple[RecordProxy, ...]

    def __init__(self, registry: Registry, model: ModelDef, objs: Sequence[Any]) -> None:
        items = tuple(RecordProxy(registry, model, o) for o in objs)
        object.__setattr__(self, "_nurture_items", items)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("records are read-only in templates")

    def __iter__(self) -> Iterator[RecordProxy]:
        return iter(self._nurture_items)

    def __len__(self) -> int:
        return len(self._nurture_items)

    def __getitem__(self, index: object) -> RecordProxy:
        if not isinstance(index, int) or isinstance(index, bool):
            raise KeyError(index)
        items: tuple[RecordProxy, ...] = self._nurture_items
        return items[index]

    def __bool__(self) -> bool:
        return bool(self._nurture_items)

    def __str__(self) -> str:
        return ", ".join(s for s in (str(i) for i in self._nurture_items) if s)

    def __repr__(self) -> str:
        return "<records>"


def _scalar(value: Any) -> Any:
    if isinstance(value, str | bool | int | float | Decimal | datetime | date):
        return value
    return str(value)


# --------------------------------------------------------------------------- sandbox


def _is_blank(value: Any) -> bool:
    return value is None or isinstance(value, Undefined) or (isinstance(value, str) and not value.strip())


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Like Jinja's ``default``, but ``None`` and empty strings count as missing too."""
    if _is_blank(value) or (boolean and not value):
        return default_value
    return value


def _bounded(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_SEQUENCE_PRODUCT * 10:
        raise SecurityError("value too large")
    _tick()
    return value


@pass_eval_context
def _replace(eval_ctx: EvalContext, value: Any, old: Any, new: Any, count: int | None = None) -> Any:
    """Jinja's ``replace``, refusing results larger than the sandbox allows."""
    text, old_s, new_s = str(value), str(old), str(new)
    occurrences = text.count(old_s) if old_s else len(text) + 1
    if count is not None:
        occurrences = min(occurrences, int(count))
    if len(text) + occurrences * (len(new_s) - len(old_s)) > MAX_SEQUENCE_PRODUCT * 10:
        raise SecurityError("replace result too large")
    _tick()
    return jinja_filters.do_replace(eval_ctx, value, old, new, count)


class _BoundedCodeGenerator(CodeGenerator):
    """Wraps every ``~`` concatenation in a size check (the sandbox cannot intercept it)
    and every loop's sequence in the render budget's meter."""

    _nurture_iters: set[int]

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.nurture_bounded(")
        super().visit_Concat(node, frame)
        self.write(")")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if not hasattr(self, "_nurture_iters"):
            self._nurture_iters = set()
        self._nurture_iters.add(id(node.iter))
        super().visit_For(node, frame)

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        iters = getattr(self, "_nurture_iters", None)
        if iters is not None and id(node) in iters:
            iters.discard(id(node))
            self.write("environment.nurture_loop(context, ")
            result = super().visit(node, *args, **kwargs)
            self.write(")")
            return result
        return super().visit(node, *args, **kwargs)


def _date(value: Any, fmt: str = "%Y-%m-%d") -> Any:
    if isinstance(value, datetime | date):
        return value.strftime(fmt)
    return value


_FILTERS: dict[str, Callable[..., Any]] = {
    "default": _default,
    "d": _default,
    "date": _date,
    "abs": jinja_filters.FILTERS["abs"],
    "capitalize": jinja_filters.FILTERS["capitalize"],
    "escape": jinja_filters.FILTERS["escape"],
    "e": jinja_filters.FILTERS["e"],
    "first": jinja_filters.FILTERS["first"],
    "last": jinja_filters.FILTERS["last"],
    "float": jinja_filters.FILTERS["float"],
    "int": jinja_filters.FILTERS["int"],
    "join": jinja_filters.FILTERS["join"],
    "length": jinja_filters.FILTERS["length"],
    "count": jinja_filters.FILTERS["count"],
    "lower": jinja_filters.FILTERS["lower"],
    "upper": jinja_filters.FILTERS["upper"],
    "title": jinja_filters.FILTERS["title"],
    "trim": jinja_filters.FILTERS["trim"],
    "truncate": jinja_filters.FILTERS["truncate"],
    "replace": _replace,
    "round": jinja_filters.FILTERS["round"],
    "striptags": jinja_filters.FILTERS["striptags"],
    "string": jinja_filters.FILTERS["string"],
}
_TESTS: dict[str, Any] = {
    name: jinja_tests.TESTS[name]
    for name in (
        "defined", "undefined", "none", "number", "string", "odd", "even", "divisibleby",
        "eq", "==", "equalto", "ne", "!=", "lt", "<", "le", "<=", "gt", ">", "ge", ">=",
        "in", "true", "false", "boolean", "integer", "float", "lower", "upper",
    )
}
_SEQUENCES = (str, list, tuple, Markup)


class EmailSandbox(ImmutableSandboxedEnvironment):
    """The sandbox: no calls, attributes only on record proxies and loop, bounded operators."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=ChainableUndefined)
        self.globals.clear()
        self.filters = dict(_FILTERS)
        self.tests = dict(_TESTS)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return False  # every legitimate access goes through getattr/getitem below

    def is_safe_callable(self, obj: Any) -> bool:
        return False

    def _lookup(self, obj: Any, name: str) -> Any:
        if name.startswith("_"):
            raise SecurityError(f"access to internal attribute {name!r} is not allowed")
        if isinstance(obj, RecordProxy):
            return obj._nurture_get(name)
        if isinstance(obj, Undefined):
            return obj  # an empty relation: record.salesperson.name renders empty
        if isinstance(obj, LoopContext) and name in LOOP_ATTRIBUTES:
            return getattr(obj, name)
        raise SecurityError(
            f"attribute {name!r} of {type(obj).__name__} is not available in templates"
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self._lookup(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, str):
            return self._lookup(obj, argument)
        if isinstance(obj, RecordListProxy | list | tuple | str) and isinstance(argument, int):
            try:
                return obj[argument]
            except IndexError:
                return self.undefined(obj=obj, name=str(argument))
        if isinstance(obj, Undefined):
            return obj
        raise SecurityError(f"indexing {type(obj).__name__} is not allowed in templates")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        raise SecurityError("calling functions or methods is not allowed in templates")

    @staticmethod
    def nurture_bounded(value: Any) -> Any:
        return _bounded(value)

    @staticmethod
    def nurture_loop(context: Any, iterable: Any) -> Any:
        """A loop's sequence, charged to the render budget before the loop starts."""
        meter = _meter(context)
        if isinstance(iterable, Undefined):
            return iterable
        if not isinstance(iterable, Sequence | RecordListProxy):
            iterable = list(_limited(iterable, meter.budget.iterations + 1))
        meter.charge(len(iterable))
        return _CountedLoop(meter, iterable)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Arithmetic with bounded results: no huge strings, lists or integers."""
        _meter(context).tick()
        both_int = isinstance(left, int) and isinstance(right, int)
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent larger than {MAX_EXPONENT}")
            if both_int and abs(left).bit_length() * abs(right) > MAX_INT_BITS:
                raise SecurityError("number too large")
            return left**right
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, _SEQUENCES) and isinstance(times, int):
                    if len(seq) * times > MAX_SEQUENCE_PRODUCT:
                        raise SecurityError("repeated value too large")
            if both_int and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                raise SecurityError("number too large")
            return left * right
        if operator == "%":
            if isinstance(left, str):
                raise SecurityError("'%' string formatting is not allowed in templates")
            return left % right
        if operator == "+":
            return _bounded(left + right)
        return super().call_binop(context, operator, left, right)


def _limited(items: Iterable[Any], limit: int) -> Iterator[Any]:
    for count, item in enumerate(items):
        if count >= limit:
            return
        yield item


_HTML_ENV = EmailSandbox(autoescape=True)
_TEXT_ENV = EmailSandbox(autoescape=False)


# --------------------------------------------------------------------------- validation

_TAG_SPAN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_QUOTED = re.compile(r"'([^']+)'")


@dataclass(frozen=True)
class _Binding:
    kind: Literal["record", "records", "value", "loop"]
    model: str | None = None


_VALUE = _Binding("value")


class _Locator:
    """Maps a (line, regex) to a 1-based column, preferring matches inside ``{{ }}``/``{% %}``."""

    def __init__(self, source: str) -> None:
        self.lines = source.split("\n")
        self.line_starts: list[int] = []
        offset = 0
        for line in self.lines:
            self.line_starts.append(offset)
            offset += len(line) + 1
        self.spans = [(m.start(), m.end()) for m in _TAG_SPAN.finditer(source)]

    def _in_tag(self, pos: int) -> bool:
        return any(start <= pos < end for start, end in self.spans)

    def column(self, line: int, pattern: str | None) -> int:
        if not 1 <= line <= len(self.lines):
            return 1
        text = self.lines[line - 1]
        base = self.line_starts[line - 1]
        if pattern is not None:
            fallback: int | None = None
            for match in re.finditer(pattern, text):
                start = match.start(1) if match.re.groups else match.start()
                if self._in_tag(base + start):
                    return start + 1
                fallback = start + 1 if fallback is None else fallback
            if fallback is not None:
                return fallback
        for start, _end in self.spans:
            if base <= start < base + len(text) + 1:
                return start - base + 1
        return 1

    def syntax_column(self, line: int, message: str) -> int:
        text = self.lines[line - 1] if 1 <= line <= len(self.lines) else ""
        for quoted in reversed(_QUOTED.findall(message)):
            if quoted in text:
                return self.column(line, re.escape(quoted))
        # point at the last tag opening on the line, else column 1
        positions = [m.start() for m in re.finditer(r"\{\{|\{%", text)]
        return positions[-1] + 1 if positions else 1


class _Checker:
    def __init__(
        self,
        registry: Registry,
        model: ModelDef,
        names: frozenset[str],
        field_name: str,
        source: str,
    ) -> None:
        self.registry = registry
        self.model = model
        self.names = names
        self.field_name = field_name
        self.locator = _Locator(source)
        self.problems: list[TemplateProblem] = []
        # Loop items a message costs at least (literal lists counted, relations as one).
        self.multiplier = 1
        self.iterations = 0
        self.over_budget = False

    def error(self, node: nodes.Node, message: str, pattern: str | None = None) -> None:
        line = getattr(node, "lineno", 1) or 1
        self.problems.append(
            TemplateProblem(self.field_name, line, self.locator.column(line, pattern), message)
        )

    # statements ------------------------------------------------------------------
    def body(self, stmts: Sequence[nodes.Node], scope: dict[str, _Binding]) -> None:
        for stmt in stmts:
            self.stmt(stmt, scope)

    def bind(self, target: nodes.Node, binding: _Binding, scope: dict[str, _Binding]) -> None:
        if isinstance(target, nodes.Name):
            scope[target.name] = binding
        elif isinstance(target, nodes.Tuple):
            for item in target.items:
                self.bind(item, _VALUE, scope)
        else:
            self.error(target, "only simple names can be assigned")

    def stmt(self, node: nodes.Node, scope: dict[str, _Binding]) -> None:
        for cls, tag in _UNSUPPORTED_TAGS.items():
            if isinstance(node, cls):
                self.error(node, f"'{{% {tag} %}}' is not supported in email templates",
                           rf"\{{%-?\s*{tag.split()[0]}\b")
                return
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if not isinstance(child, nodes.TemplateData):
                    self.expr(child, scope)
        elif isinstance(node, nodes.For):
            iterated = self.expr(node.iter, scope)
            inner = dict(scope)
            if iterated.kind == "records":
                self.bind(node.target, _Binding("record", iterated.model), inner)
            else:
                # Only data-bounded loops: to-many fields, or a literal list written out in
                # the template (no `[1] * 100000`, no looping over a string's characters).
                literal = isinstance(node.iter, nodes.List | nodes.Tuple) and all(
                    isinstance(item, nodes.Const) for item in node.iter.items
                )
                if not literal:
                    self.error(
                        node.iter,
                        "only a to-many field (a list of records) or a literal list can be "
                        "looped over",
                        r"\bin\b\s*(\S)",
                    )
                self.bind(node.target, _VALUE, inner)
            inner["loop"] = _Binding("loop")
            if node.test is not None:
                self.expr(node.test, inner)
            size = len(node.iter.items) if isinstance(node.iter, nodes.List | nodes.Tuple) else 1
            outer = self.multiplier
            self.multiplier = outer * size
            self.iterations += self.multiplier
            if self.iterations > SEND_BUDGET.iterations and not self.over_budget:
                self.over_budget = True
                self.error(
                    node,
                    f"these loops run at least {self.iterations} times per message, more than "
                    f"the render budget of {SEND_BUDGET.iterations} iterations",
                    r"\{%-?\s*for\b",
                )
            self.body(node.body, inner)
            self.multiplier = outer
            self.body(node.else_, dict(scope))
        elif isinstance(node, nodes.If):
            self.expr(node.test, scope)
            self.body(node.body, scope)
            for elif_ in node.elif_:
                self.stmt(elif_, scope)
            self.body(node.else_, scope)
        elif isinstance(node, nodes.Assign):
            self.bind(node.target, self.expr(node.node, scope), scope)
        elif isinstance(node, nodes.AssignBlock):
            self.body(node.body, dict(scope))
            if node.filter is not None:
                self.expr(node.filter, scope)
            self.bind(node.target, _VALUE, scope)
        elif isinstance(node, nodes.With):
            inner = dict(scope)
            for target, value in zip(node.targets, node.values, strict=False):
                self.bind(target, self.expr(value, scope), inner)
            self.body(node.body, inner)
        elif isinstance(node, nodes.FilterBlock):
            self.expr(node.filter, scope)
            self.body(node.body, scope)
        elif isinstance(node, nodes.Expr):
            self.expr(node, scope)
        else:
            for sub in node.iter_child_nodes():
                self.stmt(sub, scope)

    # expressions -----------------------------------------------------------------
    def attr(self, base: _Binding, name: str, node: nodes.Node) -> _Binding:
        pattern = rf"(?:\.\s*|\[\s*['\"])({re.escape(name)})\b"
        if name.startswith("_"):
            self.error(node, f"access to internal attribute {name!r} is not allowed", pattern)
            return _VALUE
        if base.kind == "record" and base.model is not None:
            model = self.registry.get(base.model)
            fdef = model.fields.get(name)
            if fdef is None:
                known = ", ".join(sorted(model.fields))
                self.error(node, f"unknown field {name!r} on {model.name} (fields: {known})", pattern)
                return _VALUE
            if fdef.is_relation and fdef.relation is not None:
                return _Binding("records" if fdef.is_to_many else "record", fdef.relation)
            return _VALUE
        if base.kind == "records":
            self.error(
                node,
                f"{name!r}: this is a list of records; loop over it with {{% for … in … %}} "
                "or print it whole",
                pattern,
            )
            return _VALUE
        if base.kind == "loop":
            if name not in LOOP_ATTRIBUTES:
                self.error(node, f"unknown loop attribute {name!r}", pattern)
            return _VALUE
        self.error(node, f"{name!r}: attributes can only be read from records", pattern)
        return _VALUE

    def expr(self, node: nodes.Node, scope: dict[str, _Binding]) -> _Binding:
        if isinstance(node, nodes.Name):
            if node.name in scope:
                return scope[node.name]
            if node.name == "record":
                return _Binding("record", self.model.name)
            if node.name in self.names:
                return _VALUE
            known = ", ".join(sorted({"record", *self.names}))
            self.error(node, f"unknown variable {node.name!r} (available: {known})",
                       rf"(?<![.\w])({re.escape(node.name)})\b")
            return _VALUE
        if isinstance(node, nodes.Getattr):
            return self.attr(self.expr(node.node, scope), node.attr, node)
        if isinstance(node, nodes.Getitem):
            base = self.expr(node.node, scope)
            arg = node.arg
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                return self.attr(base, arg.value, node)
            if isinstance(arg, nodes.Const) and isinstance(arg.value, int):
                if base.kind == "records":
                    return _Binding("record", base.model)
                if base.kind == "record":
                    self.error(node, "a record cannot be indexed by a number", r"\[")
                return _VALUE
            pattern = rf"\[\s*{re.escape(arg.name)}\b" if isinstance(arg, nodes.Name) else r"\["
            self.error(node, "dynamic field access is not allowed; write record.field_name", pattern)
            return _VALUE
        if isinstance(node, nodes.Call):
            self.error(node, "calling functions or methods is not allowed in templates", r"\(")
            return _VALUE
        if isinstance(node, nodes.Filter):
            base = self.expr(node.node, scope) if node.node is not None else _VALUE
            self._args(node, scope, base)
            if node.name in ("first", "last") and base.kind == "records":
                return _Binding("record", base.model)
            if node.name in ("default", "d") and base.kind == "record":
                return base
            return _VALUE
        if isinstance(node, nodes.Test):
            self.expr(node.node, scope)
            self._args(node, scope)
            return _VALUE
        if isinstance(node, nodes.CondExpr):
            self.expr(node.test, scope)
            first = self.expr(node.expr1, scope)
            if node.expr2 is not None:
                self.expr(node.expr2, scope)
            return first
        for child in node.iter_child_nodes():
            self.expr(child, scope)
        return _VALUE

    def _args(
        self, node: nodes.Filter | nodes.Test, scope: dict[str, _Binding], base: _Binding = _VALUE
    ) -> None:
        for arg in node.args:
            self.expr(arg, scope)
        for kwarg in node.kwargs:
            self.expr(kwarg.value, scope)
            if kwarg.key == "attribute":  # join(attribute='name') reads a field of each record
                value = kwarg.value
                if not (isinstance(value, nodes.Const) and isinstance(value.value, str)):
                    self.error(node, "attribute= must be a field name in quotes", r"attribute")
                elif base.kind == "records" and base.model is not None:
                    for part in value.value.split("."):
                        base = self.attr(_Binding("record", base.model), part, node)
                        if base.kind != "record":
                            break
                else:
                    self.error(node, "attribute= can only be used on a list of records", r"attribute")
        for dyn in (node.dyn_args, node.dyn_kwargs):
            if dyn is not None:
                self.error(node, "*args / **kwargs are not allowed in templates")


_BLOCK_TAG = re.compile(r"\{%[-+]?\s*(\w+)(.*?)[-+]?%\}", re.S)
_BLOCKS = frozenset({"for", "if", "with", "filter", "autoescape", "macro", "call", "block", "raw"})


def _unclosed_block(source: str, name: str) -> int | None:
    """Offset of the innermost block tag ``name`` that is never closed, if found."""
    stack: list[tuple[str, int]] = []
    for match in _BLOCK_TAG.finditer(source):
        tag, rest = match.group(1), match.group(2)
        if tag in _BLOCKS or (tag == "set" and "=" not in rest):
            stack.append((tag, match.start()))
        elif tag.startswith("end"):
            opened = tag[3:]
            while stack:
                if stack.pop()[0] == opened:
                    break
    for tag, start in reversed(stack):
        if tag == name:
            return start
    return None


def _check(
    env: EmailSandbox,
    source: str,
    field_name: str,
    model: ModelDef,
    registry: Registry,
    names: frozenset[str],
) -> tuple[Template | None, list[TemplateProblem]]:
    locator = _Locator(source)
    try:
        tree = env.parse(source)
        compiled = env.from_string(tree)  # also checks filter and test names
    except TemplateSyntaxError as exc:
        line = exc.lineno or 1
        message = exc.message or "syntax error"
        column = locator.syntax_column(line, message)
        unclosed = re.search(r"innermost block that needs to be closed is '(\w+)'", message)
        if unclosed is not None and message.startswith("Unexpected end of template"):
            start = _unclosed_block(source, unclosed.group(1))
            if start is not None:  # point at the block left open, not at the end of the text
                line = source.count("\n", 0, start) + 1
                column = start - (source.rfind("\n", 0, start) + 1) + 1
                message = f"'{{% {unclosed.group(1)} %}}' is never closed: {message}"
        return None, [TemplateProblem(field_name, line, column, message)]
    checker = _Checker(registry, model, names, field_name, source)
    checker.body(tree.body, {})
    return compiled, checker.problems


# --------------------------------------------------------------------------- rendering


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


_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.I)
_PREHEADER_PAD = "&#847;&zwnj;&nbsp;" * 60


def _document(body: str) -> str:
    if re.search(r"<html[\s>]", body, re.I):
        return body
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"</head><body>{body}</body></html>"
    )


def inline_css(html: str) -> str:
    """A full HTML document with its ``<style>`` rules inlined (``@media`` rules kept)."""
    return str(_INLINER.inline(_document(html)))


def add_preheader(html: str, preview: str) -> str:
    """Insert the hidden preview text right after ``<body>`` (or at the start)."""
    if not preview:
        return html
    block = (
        '<div style="display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0;'
        'max-width:0;opacity:0;overflow:hidden;mso-hide:all">'
        f"{html_lib.escape(preview)}{_PREHEADER_PAD}</div>"
    )
    match = _BODY_OPEN.search(html)
    if match is None:
        return block + html
    return html[: match.end()] + block + html[match.end() :]


def _converter() -> html2text.HTML2Text:
    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: mail clients wrap; markers keep their place
    converter.wrap_links = False
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = True
    converter.unicode_snob = True
    converter.skip_internal_links = True
    return converter


def _tidy_text(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def html_to_text(html: str) -> str:
    """The plain-text alternative of an HTML email (links kept inline, images dropped)."""
    return _tidy_text(_converter().handle(html))


# Plain text derived once per template instead of once per message: every Jinja tag of the
# HTML source is replaced by an inert alphanumeric marker, the marked HTML goes through
# html2text, and the markers are put back, giving a plain-text Jinja template. Used when every
# block tag ({% … %}) survives exactly once (a block tag inside an attribute or a <style> is
# dropped by html2text: then the per-message conversion is used instead).
_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_MARKER = re.compile(r"zqxj(\d+)jqxz")
_TEXT_LINK = re.compile(r"\]\(([^()\s]+)\)|<(https?://[^<>\s]+)>")


def text_template_source(html_source: str) -> str | None:
    """The plain-text Jinja source derived from an HTML template source, or None."""
    if re.search(r"\{%-?\s*raw\b", html_source) or "zqxj" in html_source:
        return None
    if re.search(r"<ol\b", html_source, re.I) and re.search(r"\{%-?\s*for\b", html_source):
        return None  # numbered items repeated by a loop: only per-message conversion counts them
    tags: list[str] = []

    def mark(match: re.Match[str]) -> str:
        tag = match.group(0)
        if tag.startswith("{#"):
            return ""
        tags.append(tag)
        return f"zqxj{len(tags) - 1}jqxz"

    marked = _JINJA_TAG.sub(mark, html_source)
    if any(d in marked for d in ("{{", "}}", "{%", "%}", "{#", "#}")):
        return None  # a tag our pattern could not delimit (e.g. "}}" inside a string)
    text = _converter().handle(marked)
    for index, tag in enumerate(tags):
        if tag.startswith("{%") and text.count(f"zqxj{index}jqxz") != 1:
            return None
    # html2text must not have made new template syntax (from braces split across elements)
    # nor glued a brace to a marker: only the original, validated tags may come back.
    bare = _MARKER.sub(" ", text)
    if any(d in bare for d in ("{{", "}}", "{%", "%}", "{#", "#}")) or re.search(
        r"[{%#]zqxj\d+jqxz|zqxj\d+jqxz[}%#]", text
    ):
        return None
    return _MARKER.sub(lambda m: tags[int(m.group(1))], text)


def _compile_text(
    html_source: str, model: ModelDef, registry: Registry, names: frozenset[str]
) -> Template | None:
    source = text_template_source(html_source)
    if source is None:
        return None
    compiled, problems = _check(_TEXT_ENV, source, "text", model, registry, names)
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
        meter = _METER.get() or _Meter(_BUDGET.get())
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
            text = _tidy_text(self._run(self.text, values, "text"))
            if text_links is not None:
                text = _TEXT_LINK.sub(lambda m: _swap_link(m, text_links), text)
        else:
            text = html_to_text(html)
        return RenderedEmail(subject=subject, preview=preview, html=add_preheader(html, preview), text=text)


def _swap_link(match: re.Match[str], text_links: Callable[[str], str | None]) -> str:
    if match.group(1) is not None:
        new = text_links(match.group(1))
        return f"]({new})" if new else match.group(0)
    new = text_links(match.group(2))
    return f"<{new}>" if new else match.group(0)


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from nurture.records.catalog import REGISTRY

    return REGISTRY


def compile_template(
    model: str | ModelDef,
    template: EmailTemplate,
    *,
    registry: Registry | None = None,
    names: frozenset[str] = CONTEXT_NAMES,
) -> CompiledTemplate:
    """Validate (raising :class:`TemplateValidationError`) and compile a template."""
    reg = _registry(registry)
    try:
        mdef = reg.get(model) if isinstance(model, str) else model
    except RegistryError as exc:
        raise ValidationError(str(exc), field="model") from None
    problems: list[TemplateProblem] = []
    compiled: dict[str, Template | None] = {}
    for name, source, env in (
        ("subject", template.subject, _TEXT_ENV),
        ("preview", template.preview, _TEXT_ENV),
        ("html", template.html, _HTML_ENV),
    ):
        tpl, found = _check(env, source, name, mdef, reg, names)
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
