"""Save-time checking of a template source against the model registry.

:func:`check_source` parses and compiles a source in a sandbox and walks its syntax tree: a
syntax error, an unknown filter, an unknown variable or field, a dynamic field access, a call,
an unsupported tag, or literal loops that alone exceed the send budget are reported as
:class:`~nurture.templating.errors.TemplateProblem` items naming the field, the line and the
column — never at send time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from jinja2 import Template, TemplateSyntaxError, nodes

from nurture.records.registry import ModelDef, Registry
from nurture.templating.budget import SEND_BUDGET
from nurture.templating.errors import TemplateProblem
from nurture.templating.sandbox import LOOP_ATTRIBUTES, EmailSandbox

_UNSUPPORTED_TAGS: dict[type[nodes.Node], str] = {
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
    nodes.Extends: "extends",
    nodes.Block: "block",
}

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


def check_source(
    env: EmailSandbox,
    source: str,
    field_name: str,
    model: ModelDef,
    registry: Registry,
    names: frozenset[str],
) -> tuple[Template | None, list[TemplateProblem]]:
    """``source`` compiled in ``env`` (None on a syntax error) and the problems found in it."""
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
