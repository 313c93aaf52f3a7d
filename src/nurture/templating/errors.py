"""What goes wrong with a template: problems found at save time, failures at render time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nurture.errors import NurtureError, ValidationError


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
