"""The sandbox: Jinja2 in an immutable sandboxed environment, shared by every channel.

What a template can do: print fields of the target record and of related records (through
the read-only proxies of :mod:`.proxies`), loop over to-many relations, use
``if``/``set``/``with``/``filter`` blocks and a short whitelist of filters and tests.

What it cannot do: call anything (no function or method calls at all), read any attribute
that is not a registered field, reach globals (``range``, ``cycler``, ``joiner``,
``namespace``, ``lipsum``, ``dict`` are removed), or build huge values (``'x' * 10**9``).
Loops, operators and ``~`` concatenations are charged to the render budget (:mod:`.budget`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from jinja2 import ChainableUndefined, Undefined, nodes, pass_eval_context
from jinja2 import filters as jinja_filters
from jinja2 import tests as jinja_tests
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from nurture.templating.budget import CountedLoop, context_meter, tick
from nurture.templating.proxies import RecordListProxy, RecordProxy

LOOP_ATTRIBUTES: frozenset[str] = frozenset(
    {"index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0",
     "previtem", "nextitem"}
)
MAX_SEQUENCE_PRODUCT = 100_000
MAX_EXPONENT = 100
MAX_INT_BITS = 4096


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
    tick()
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
    tick()
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
        meter = context_meter(context)
        if isinstance(iterable, Undefined):
            return iterable
        if not isinstance(iterable, Sequence | RecordListProxy):
            iterable = list(_limited(iterable, meter.budget.iterations + 1))
        meter.charge(len(iterable))
        return CountedLoop(meter, iterable)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Arithmetic with bounded results: no huge strings, lists or integers."""
        context_meter(context).tick()
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

