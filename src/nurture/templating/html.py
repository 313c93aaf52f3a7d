"""HTML of an email: CSS inlining, the hidden preheader, the plain-text part.

The plain-text part is normally derived once per template, not once per message (html2text
is by far the slowest step): :func:`text_template_source` converts the HTML *source* with
every Jinja tag replaced by an inert marker, then puts the tags back, giving a plain-text
template rendered like the others. Templates where that cannot be exact (a block tag inside
an attribute or a ``<style>``, ``{% raw %}``, a numbered list repeated by a loop) fall back
to converting each rendered message (:func:`html_to_text`).
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable

import css_inline
import html2text

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


def tidy_text(text: str) -> str:
    """Trailing spaces dropped, at most one blank line in a row, one final newline."""
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def html_to_text(html: str) -> str:
    """The plain-text alternative of an HTML email (links kept inline, images dropped)."""
    return tidy_text(_converter().handle(html))


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



def swap_text_links(text: str, text_links: Callable[[str], str | None]) -> str:
    """``text`` with each link URL replaced by ``text_links(url)`` (kept when it gives None)."""
    return _TEXT_LINK.sub(lambda m: _swap_link(m, text_links), text)


def _swap_link(match: re.Match[str], text_links: Callable[[str], str | None]) -> str:
    if match.group(1) is not None:
        new = text_links(match.group(1))
        return f"]({new})" if new else match.group(0)
    new = text_links(match.group(2))
    return f"<{new}>" if new else match.group(0)
