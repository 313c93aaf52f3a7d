"""Email templates: sandbox, registry-checked placeholders, rendering."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from nurture.errors import ValidationError
from nurture.records import models as m
from nurture.records.catalog import REGISTRY
from nurture.templating import (
    EmailTemplate,
    RecordProxy,
    TemplateRenderError,
    TemplateValidationError,
    compile_template,
    html_to_text,
    render_preview,
    validate_template,
)

CONTACT: dict[str, Any] = {
    "name": "Ann <Admin>",
    "email": "ann@example.com",
    "city": "",
    "created_at": datetime(2026, 3, 4, 5, 6),
    "salesperson": {"name": "Bob Seller", "email": "bob@acme.example", "password_hash": "SECRET-HASH"},
    "tags": [{"name": "vip"}, {"name": "beta"}],
}


def problems(model: str, html: str, subject: str = "Subject") -> list[tuple[str, int, int, str]]:
    with pytest.raises(TemplateValidationError) as info:
        validate_template(model, subject, html)
    return [(p.field, p.line, p.column, p.message) for p in info.value.problems]


def raw_render(source: str, record: Any = CONTACT, *, autoescape: bool = True) -> str:
    """Render WITHOUT save-time validation: what the runtime sandbox alone allows."""
    from nurture.templating import compiled as t

    env = t._HTML_ENV if autoescape else t._TEXT_ENV
    compiled = compile_template("contact", EmailTemplate("s", "x"))
    tpl = env.from_string(source)
    return compiled._run(tpl, {"record": RecordProxy(REGISTRY, REGISTRY.get("contact"), record)}, "html")


# ------------------------------------------------------------------ validation


def test_valid_template_passes() -> None:
    validate_template(
        "contact",
        "Hello {{ record.name | default('there') }}",
        """<p>Hi {{ record.name | default('there') }} from {{ record.salesperson.name }}</p>
{% for tag in record.tags %}{{ loop.index }}. {{ tag.name | upper }}{% endfor %}
{% if record.salesperson %}{% set sp = record.salesperson %}{{ sp.email }}{% endif %}
{{ record.tags | join(', ') }} {{ (record.tags | first).name }}
<a href="{{ unsubscribe_url }}">Unsubscribe</a> <a href="{{ view_url }}">View</a>""",
        "Preview for {{ record.email }}",
    )


def test_unknown_field_reports_line_and_column() -> None:
    html = "<p>Hello</p>\n<p>Dear {{ record.nmae }}</p>"
    assert problems("contact", html) == [
        ("html", 2, 19, problems("contact", html)[0][3]),
    ]
    message = problems("contact", html)[0][3]
    assert "unknown field 'nmae' on contact" in message and "name" in message


def test_unknown_field_on_relation_is_checked_against_related_model() -> None:
    found = problems("contact", "{{ record.salesperson.password_hash }}")
    assert found[0][:3] == ("html", 1, 23)
    assert "unknown field 'password_hash' on user" in found[0][3]


def test_unknown_field_in_loop_variable() -> None:
    found = problems("contact", "{% for t in record.tags %}\n  {{ t.colour }}\n{% endfor %}")
    assert found[0][:3] == ("html", 2, 8)
    assert "on tag" in found[0][3]


def test_field_of_a_scalar_and_of_a_list() -> None:
    assert "attributes can only be read from records" in problems("contact", "{{ record.name.length }}")[0][3]
    assert "list of records" in problems("contact", "{{ record.tags.name }}")[0][3]


def test_unknown_variable() -> None:
    found = problems("contact", "x {{ customer.name }}")
    assert found[0][:3] == ("html", 1, 6)
    assert "unknown variable 'customer'" in found[0][3]


def test_syntax_error_has_line_and_column() -> None:
    found = problems("contact", "<p>ok</p>\n<p>{{ record.name }</p>")
    assert found[0][0:2] == ("html", 2)
    assert found[0][2] == 19  # the stray '}'
    found = problems("contact", "{% for t in record.tags %}\n\n{% endfo %}")
    assert found[0][1:3] == (3, 4)
    assert "endfo" in found[0][3]


def test_unknown_filter_is_a_save_time_error() -> None:
    found = problems("contact", "\n{{ record.name | attr('__class__') }}")
    assert found[0][1] == 2 and "attr" in found[0][3]
    assert "No filter named" in problems("contact", "{{ record.name | format('%s') }}")[0][3]


def test_subject_and_preview_are_checked_too() -> None:
    with pytest.raises(TemplateValidationError) as info:
        validate_template("contact", "Hi {{ record.nope }}", "<p>ok</p>", "{{ oops }}")
    fields = [p.field for p in info.value.problems]
    assert fields == ["subject", "preview"]
    assert info.value.field == "subject"
    assert isinstance(info.value, ValidationError)
    assert "subject, line 1, column" in info.value.message


def test_empty_subject_and_unknown_model() -> None:
    assert problems("contact", "<p>x</p>", subject="  ")[0][3] == "the subject is required"
    with pytest.raises(ValidationError) as info:
        validate_template("no_such_model", "s", "x")
    assert info.value.field == "model"


@pytest.mark.parametrize(
    "source",
    [
        "{{ record.__class__ }}",
        "{{ record._sa_instance_state }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ range(10) }}",
        "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
        "{% for k in record %}{{ k }}{% endfor %}",
        "{{ record['__class__'] }}",
        "{{ record[name] }}",
        "{{ record.name.upper() }}",
        "{{ record.name.__len__() }}",
        "{% include 'secrets.txt' %}",
        "{% import 'x' as y %}",
        "{% extends 'base.html' %}",
        "{% macro m() %}x{% endmacro %}",
        "{{ record.name | map(attribute='__class__') }}",
        "{{ self.__init__ }}",
        "{{ config }}",
        "{{ request.application }}",
    ],
)
def test_escape_attempts_are_refused_at_save_time(source: str) -> None:
    with pytest.raises(TemplateValidationError):
        validate_template("contact", "s", source)


# ------------------------------------------------------------------ runtime sandbox


@pytest.mark.parametrize(
    "source",
    [
        "{{ record.__class__ }}",
        "{{ record._nurture_obj }}",
        "{{ record['_nurture_obj'] }}",
        "{{ record._nurture_registry }}",
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
        "{{ record.name.upper() }}",
        "{{ record.name.format }}",
        "{{ 'x'.join(['a']) }}",
        "{{ (record.tags | first)._nurture_obj }}",
        "{% for t in record.tags %}{{ t.__class__ }}{% endfor %}",
        "{% for k in record %}{{ k }}{% endfor %}",
        "{{ 'a' * 10000000 }}",
        "{{ [1] * 10000000 }}",
        "{{ 9 ** 9999999 }}",
        "{{ loop.__class__ }}",
    ],
)
def test_runtime_sandbox_fails_safely(source: str) -> None:
    with pytest.raises(TemplateRenderError) as info:
        raw_render(source)
    assert "SECRET" not in info.value.message
    assert "<class" not in info.value.message


@pytest.mark.parametrize(
    "source",
    ["{{ cycler }}{{ joiner }}{{ namespace }}{{ lipsum }}{{ range }}{{ dict }}", "{{ record.password_hash }}"],
)
def test_globals_and_hidden_fields_render_nothing(source: str) -> None:
    assert raw_render(source) == ""


def test_hidden_field_of_related_orm_object_is_not_revealed() -> None:
    user = m.User(login="bob", name="Bob", email="bob@acme.example", password_hash="SECRET-HASH")
    contact = m.Contact(name="Ann", email="ann@example.com", salesperson=user)
    assert raw_render("{{ record.salesperson.password_hash }}|{{ record.salesperson.name }}", contact) == "|Bob"


def test_record_proxy_is_read_only() -> None:
    proxy = RecordProxy(REGISTRY, REGISTRY.get("contact"), CONTACT)
    with pytest.raises(AttributeError):
        proxy.name = "x"  # type: ignore[attr-defined]


# ------------------------------------------------------------------ rendering

TEMPLATE = EmailTemplate(
    subject="Hello {{ record.name | default('there') }} \n from   {{ record.salesperson.name | default('us') }}",
    preview="{{ record.name | default('Friend') }}, our sale starts now",
    html="""<html><head><style>
p.lead { color: #cc0000; font-size: 18px }
@media (max-width: 600px) { p.lead { font-size: 14px } }
</style></head><body>
<p class="lead">Hi {{ record.name | default('there') }}!</p>
<p>City: {{ record.city | default('somewhere') }}. Since {{ record.created_at | date('%d %B %Y') }}.</p>
<ul>{% for tag in record.tags %}<li>{{ tag.name }}</li>{% endfor %}</ul>
<p>Your contact: {{ record.salesperson.name | default('our team') }}</p>
<a href="https://shop.example/sale">Shop</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a>
</body></html>""",
)


def test_render_full_email() -> None:
    out = render_preview("contact", TEMPLATE, CONTACT, context={"unsubscribe_url": "https://n.example/u/TOKEN"})
    assert out.subject == "Hello Ann <Admin> from Bob Seller"  # plain text, one line, not escaped
    assert out.preview == "Ann <Admin>, our sale starts now"
    assert "Hi Ann &lt;Admin&gt;!" in out.html  # autoescaped in HTML
    assert "City: somewhere." in out.html  # default applies to empty strings
    assert "04 March 2026" in out.html
    assert "<li>vip</li><li>beta</li>" in out.html
    # CSS inlined, @media kept in a style tag
    assert 'class="lead" style="color: #cc0000;font-size: 18px;"' in out.html
    assert "@media (max-width: 600px)" in out.html
    # hidden preheader right after <body>
    body = out.html.split("<body>", 1)[1]
    assert body.startswith('<div style="display:none')
    assert "Ann &lt;Admin&gt;, our sale starts now" in body[:400]
    # plain text part: no preheader, no markup, links kept
    assert "Hi Ann <Admin>!" in out.text
    assert "our sale starts now" not in out.text
    assert "[Shop](https://shop.example/sale)" in out.text
    assert "<li>" not in out.text and "color:" not in out.text


def test_render_with_defaults_and_no_record() -> None:
    out = render_preview("contact", TEMPLATE, None)
    assert out.subject == "Hello there from us"
    assert out.preview == "Friend, our sale starts now"
    assert "Hi there!" in out.html and "our team" in out.html and "None" not in out.html


def test_render_with_orm_record() -> None:
    contact = m.Contact(name="Zoë", email="zoe@example.com", salesperson=None, tags=[m.Tag(name="gold")])
    out = render_preview("contact", TEMPLATE, contact)
    assert out.subject == "Hello Zoë from us"
    assert "<li>gold</li>" in out.html


def test_compiled_template_renders_many_records_and_rewrites_links() -> None:
    compiled = compile_template("contact", TEMPLATE)
    seen: list[str] = []

    def rewriter(html: str) -> str:
        seen.append(html)
        return html.replace("https://shop.example/sale", "https://n.example/r/abc")

    for name in ("A", "B"):
        out = compiled.render(
            {"name": name},
            link_rewriter=rewriter,
            text_links={"https://shop.example/sale": "https://n.example/r/abc"}.get,
        )
        assert f"Hi {name}!" in out.html
        assert "https://n.example/r/abc" in out.html and "https://n.example/r/abc" in out.text
    assert len(seen) == 2


def test_render_refuses_unknown_context() -> None:
    with pytest.raises(ValueError):
        compile_template("contact", TEMPLATE).render(CONTACT, context={"evil": 1})


def test_render_wraps_fragment_into_document() -> None:
    out = render_preview("contact", EmailTemplate("s", "<style>b{color:red}</style><b>x</b>"), None)
    assert out.html.startswith("<!DOCTYPE html>")
    assert '<b style="color: red;">x</b>' in out.html


def test_output_size_is_bounded() -> None:
    source = "{% for a in record.tags %}" * 3 + "{{ 'x' * 90000 }}" + "{% endfor %}" * 3
    many = {"tags": [{"name": str(i)} for i in range(40)]}
    with pytest.raises(TemplateRenderError):
        render_preview("contact", EmailTemplate("s", source), many)


def test_html_to_text() -> None:
    text = html_to_text("<h1>Title</h1><p>Para <b>bold</b> <a href='https://x.example/'>link</a></p><img src='p.gif'>")
    assert "# Title" in text and "Para bold [link](https://x.example/)" in text and "p.gif" not in text


# ------------------------------------------------------------------ resource limits


@pytest.mark.parametrize(
    "source",
    [
        "{% set a = 'x' * 90000 %}{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}{% set e = d ~ d %}"
        "{% set f = e ~ e %}{% set g = f ~ f %}{{ g | length }}",
        "{% set a = 'x' * 90000 %}{% set b = a + a %}{% set c = b + b %}{% set d = c + c %}{% set e = d + d %}"
        "{% set f = e + e %}{% set g = f + f %}{{ g | length }}",
        "{{ '%*d' % (100000000, 1) }}",
        "{{ ((9 ** 99) ** 99) ** 99 }}",
        "{% set a = 2 ** 4000 %}{% set b = a * a %}{{ b }}",
        "{{ ('x' * 90000) | replace('x', 'yyyyyyyyyyyyyy') }}",
    ],
)
def test_resource_exhaustion_is_refused(source: str) -> None:
    with pytest.raises(TemplateRenderError):
        raw_render(source)


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in [1] * 100000 %}{% for j in [1] * 100000 %}{% endfor %}{% endfor %}",
        "{% for c in record.name %}{{ c }}{% endfor %}",
        "{% for t in record.salesperson %}{% endfor %}",
        "{{ record.tags | join(', ', attribute='__class__') }}",
        "{{ record.tags | join(', ', attribute='nmae') }}",
        "{{ record.name | join(', ', attribute='name') }}",
    ],
)
def test_unbounded_loops_and_bad_attributes_refused_at_save_time(source: str) -> None:
    with pytest.raises(TemplateValidationError):
        validate_template("contact", "s", source)


def test_ordinary_arithmetic_and_literal_loops_still_work() -> None:
    source = (
        "{% for n in [1, 2, 3] %}{{ n * 2 }}{% endfor %}|{{ 7 % 3 }}|{{ 2 ** 10 }}|{{ 'a' ~ record.name }}"
        "|{{ record.name + '!' }}|{{ record.tags | join('/', attribute='name') }}|{{ record.name | replace('Ann', 'Anna') }}"
    )
    validate_template("contact", "s", source)
    assert raw_render(source) == "246|1|1024|aAnn &lt;Admin&gt;|Ann &lt;Admin&gt;!|vip/beta|Anna &lt;Admin&gt;"


# ------------------------------------------------------------------ text part derived per template

TEXT_CASES = [
    TEMPLATE.html,
    """<h1>Hello {{ record.name }}</h1><p>Your tags:</p>
<ul>{% for tag in record.tags %}<li>{{ tag.name }}</li>{% endfor %}</ul>
{% if record.salesperson %}<p>Contact {{ record.salesperson.name }} at {{ record.salesperson.email }}</p>{% else %}<p>No rep</p>{% endif %}""",
    """<table><tr><td><p>Left {{ record.city | default('nowhere') }}</p></td><td><a href="https://x.example/?c={{ record.city }}">City link</a></td></tr></table>
<p>Line one<br>line two {{ record.email }}</p><hr><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>""",
    """<div style="color: {{ record.lang | default('red') }}"><p>{% set greeting = 'Welcome' %}{{ greeting }}, {{ record.name | upper }}!</p></div>
<ul>{% for t in record.tags %}<li>{{ loop.index }}: {{ t.name }}</li>{% endfor %}</ul>""",
]


@pytest.mark.parametrize("source", TEXT_CASES)
def test_text_template_matches_per_message_conversion(source: str) -> None:
    compiled = compile_template("contact", EmailTemplate("s", source))
    assert compiled.text is not None  # the fast path applies
    slow = compile_template("contact", EmailTemplate("s", source))
    slow.text = None
    for record in (CONTACT, {"name": "Bo", "city": "Oslo", "tags": []}, None):
        fast_text = compiled.render(record, context={"unsubscribe_url": "https://n.example/u/1"}).text
        slow_text = slow.render(record, context={"unsubscribe_url": "https://n.example/u/1"}).text
        assert " ".join(fast_text.split()) == " ".join(slow_text.split())


@pytest.mark.parametrize(
    "source",
    [
        '<p class="{% if record.name %}named{% endif %}">x</p>',
        "<style>{% if record.name %}p{color:red}{% endif %}</style><p>x</p>",
        "{% raw %}{{ not jinja }}{% endraw %}<p>x</p>",
        "<p>{{ '}}' }}</p>",
        "<p>zqxj0jqxz</p>",
        "<ol>{% for t in record.tags %}<li>{{ t.name }}</li>{% endfor %}</ol>",
    ],
)
def test_text_template_falls_back_when_tags_do_not_survive(source: str) -> None:
    compiled = compile_template("contact", EmailTemplate("s", source))
    assert compiled.text is None
    assert compiled.render(CONTACT).text  # the per-message conversion still produces text


def test_text_values_are_not_html_escaped() -> None:
    compiled = compile_template("contact", EmailTemplate("s", "<p>Hi {{ record.name }} &amp; co</p>"))
    assert compiled.text is not None
    assert compiled.render({"name": "A<b> & *c*"}).text == "Hi A<b> & *c* & co\n"


@pytest.mark.parametrize(
    "source",
    [
        "<span>{</span>{ cycler }<span>}</span>",
        "<p>{<b>{{ record.name }}</b>}</p>",
        "<p>%<b>{{ record.name }}</b></p><i>{</i>% for x in [1] * 100000 %<i>}</i>",
    ],
)
def test_text_template_never_gains_syntax_the_html_did_not_have(source: str) -> None:
    compiled = compile_template("contact", EmailTemplate("s", source))
    if compiled.text is not None:
        # whatever html2text produced, rendering it runs only the validated tags
        out = compiled.render({"name": "Ann"}).text
        assert "cycler" in out or "Ann" in out


def test_unclosed_block_points_at_its_opening_tag() -> None:
    found = problems("contact", "<p>intro</p>\r\n  {% for t in record.tags %}\r\n{{ t.name }}\r\n<p>end</p>")
    assert found[0][1:3] == (2, 3)
    assert "'{% for %}' is never closed" in found[0][3]
    found = problems("contact", "{% if record.name %}a{% if record.email %}b{% endif %}")
    assert found[0][1:3] == (1, 1)
