"""The render budget of templates: refused at save when the loops alone exceed it, stopped
at render time (iterations, then time) with a clear reason, previews under a stricter
budget for any reader, and no thread held for longer than the budget."""

from __future__ import annotations

import time

import pytest

from nurture import templating as t
from nurture.channels.sms import render as sms

THOUSAND = "[" + ",".join(["1"] * 1000) + "]"
NESTED3 = (
    f"{{% for a in {THOUSAND} %}}{{% for b in {THOUSAND} %}}{{% for c in {THOUSAND} %}}x"
    "{% endfor %}{% endfor %}{% endfor %}"
)
SLOW = "{% set x = 'ab' * 40000 %}" + "{% set y = x|replace('a','aaaaaaaaaa') %}" * 3000


def test_nested_literal_loops_over_the_budget_are_refused_at_save() -> None:
    with pytest.raises(t.TemplateValidationError) as info:
        t.validate_template("contact", "Hi", "<p>\n" + NESTED3)
    assert info.value.field == "html" and info.value.line == 2
    assert "render budget of 100000 iterations" in info.value.message
    with pytest.raises(t.TemplateValidationError):
        sms.validate_sms_template("contact", NESTED3)


def test_loops_over_relations_are_stopped_at_render_with_the_reason() -> None:
    items = "[" + ",".join(["1"] * 300) + "]"
    html = (
        f"{{% for tag in record.tags %}}{{% for a in {items} %}}{{% for b in {items} %}}"
        "{% endfor %}{% endfor %}{% endfor %}"
    )
    compiled = t.compile_template("contact", t.EmailTemplate("Hi", html))  # passes at save
    assert compiled.render({"tags": [{"name": "one"}]}).subject == "Hi"
    started = time.monotonic()
    with pytest.raises(t.RenderBudgetExceeded) as info:
        compiled.render({"tags": [{"name": "one"}, {"name": "two"}]})
    assert info.value.message == "html: loops ran more than 100000 iterations (the render budget)"
    assert time.monotonic() - started < 5  # not a timing assertion: a hang guard
    # an SMS goes through the same sandbox
    with pytest.raises(t.TemplateRenderError, match="render budget"):
        sms.compile_sms("contact", html).render({"tags": [{"name": "a"}, {"name": "b"}]})


def test_time_budget_stops_a_render_and_the_template_fails_fast_afterwards() -> None:
    compiled = t.compile_template("contact", t.EmailTemplate("Hi", SLOW))
    with t.render_budget(t.RenderBudget(seconds=0.05)), pytest.raises(t.RenderBudgetExceeded) as info:
        compiled.render(None)
    assert info.value.timed_out
    assert info.value.message == "html: rendering took longer than 0.05 s (the render budget)"
    with pytest.raises(t.RenderBudgetExceeded, match="on an earlier message; not tried again"):
        compiled.render(None)
