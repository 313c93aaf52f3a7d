"""Tracked-link rewriting, UTM parameters and the open pixel."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from nurture.channels.email.links import (
    Utm,
    add_open_pixel,
    add_utm,
    is_trackable,
    rewrite_links,
)

UNSUB = "https://news.example.com/unsubscribe/TOKEN?x=1"
UTM = Utm(campaign="Spring sale", medium="email", source="Newsletter #1")


class Shortener:
    def __init__(self) -> None:
        self.stored: list[str] = []

    def __call__(self, url: str) -> str:
        self.stored.append(url)
        return f"https://news.example.com/r/c{len(self.stored)}?t=a&u=b"


def test_add_utm_keeps_existing_query_and_fragment() -> None:
    url = add_utm("https://shop.example/p?id=7&q=a%20b&flag#reviews", UTM)
    parts = urlsplit(url)
    assert parts.fragment == "reviews"
    assert parts.query.startswith("id=7&q=a%20b&flag&")  # untouched, not re-encoded
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    assert params["utm_campaign"] == "Spring sale"
    assert params["utm_medium"] == "email"
    assert params["utm_source"] == "Newsletter #1"


def test_existing_utm_parameters_win() -> None:
    url = add_utm("https://shop.example/?utm_source=partner&UTM_MEDIUM=banner", UTM)
    params = parse_qsl(urlsplit(url).query)
    assert [v for k, v in params if k == "utm_source"] == ["partner"]
    assert "utm_medium" not in [k for k, _ in params]
    assert ("utm_campaign", "Spring sale") in params
    assert add_utm("https://a.example/", None) == "https://a.example/"
    assert add_utm("https://a.example/", Utm(None, None, None)) == "https://a.example/"


def test_is_trackable() -> None:
    assert is_trackable("https://a.example/x") and is_trackable("HTTP://A.example")
    for url in ("mailto:a@b.c", "tel:+1", "#top", "/relative", "javascript:alert(1)", "https://", "ftp://x/",
                "https://a.example/{{ record.id }}", "http://[::1"):
        assert not is_trackable(url), url


TRICKY = """<!DOCTYPE html><html><head><style>a[href^="https://css.example/"] { color: red }</style></head>
<body>
<!-- <a href="https://comment.example/">commented out</a> -->
<!--[if mso]><v:roundrect href="https://mso.example/">x</v:roundrect><![endif]-->
<a class="btn" title='href="https://fake.example/"' HREF = "https://shop.example/a?x=1&amp;y=2#top">Shop &amp; save</a>
<a href=https://unquoted.example/p>unquoted</a><a href='https://single.example/'>single</a>
<a href="mailto:help@shop.example?subject=Hi">mail</a> <a href="tel:+123456">call</a>
<a href="#section">anchor</a> <a href="/relative">rel</a> <a name="section"></a> <a>no href</a>
<a href="https://news.example.com/unsubscribe/TOKEN?x=1">Unsubscribe</a>
<a href="https://news.example.com/unsubscribe/TOKEN?x=1&amp;ignored">Unsubscribe (prefix)</a>
<a data-notrack href="https://private.example/">not tracked</a>
<script>document.write('<a href="https://script.example/">s</a>');</script>
<a
   href="https://multiline.example/path"
   target="_blank">multi
line</a>
<a href="https://shop.example/a?x=1&amp;y=2#top">Shop again</a>
<map><area shape="rect" coords="0,0,1,1" href="https://area.example/"/></map>
<p>Plain text https://bare.example/ is not a link. Ünïcödé ✓ &nbsp; &copy;</p>
<A HREF="https://upper.example/">UPPER</A>
<img alt="<a href='https://alt.example/'>" src="https://img.example/x.png"><title><a href="https://title.example/"></title>
<textarea><a href="https://textarea.example/"></textarea><abbr title="x">abbr</abbr><address>addr</address>
</body></html>"""


def test_rewrite_links_on_tricky_html() -> None:
    shorten = Shortener()
    out = rewrite_links(
        TRICKY, shorten, utm=UTM, skip_urls={UNSUB}, skip_prefixes=("https://news.example.com/unsubscribe/",)
    )
    stored_hosts = [urlsplit(u).netloc for u in shorten.stored]
    assert stored_hosts == [
        "shop.example", "unquoted.example", "single.example", "multiline.example", "area.example", "upper.example",
    ]
    # each distinct URL shortened once, reused for duplicates
    assert out.count('"https://news.example.com/r/c1?t=a&amp;u=b"') == 2
    # stored URLs are unescaped and carry UTM, fragment last
    assert shorten.stored[0] == (
        "https://shop.example/a?x=1&y=2&utm_campaign=Spring%20sale&utm_medium=email"
        "&utm_source=Newsletter%20%231#top"
    )
    # untouched: comments, MSO blocks, scripts, CSS, mailto/tel/anchors, unsubscribe, notrack, text
    for kept in (
        '<!-- <a href="https://comment.example/">commented out</a> -->',
        '<v:roundrect href="https://mso.example/">',
        "<script>document.write('<a href=\"https://script.example/\">s</a>');</script>",
        'a[href^="https://css.example/"]',
        '<a href="mailto:help@shop.example?subject=Hi">',
        '<a href="tel:+123456">', '<a href="#section">', '<a href="/relative">',
        '<a href="https://news.example.com/unsubscribe/TOKEN?x=1">Unsubscribe</a>',
        '<a href="https://news.example.com/unsubscribe/TOKEN?x=1&amp;ignored">',
        '<a data-notrack href="https://private.example/">',
        "Plain text https://bare.example/ is not a link. Ünïcödé ✓ &nbsp; &copy;",
        "title='href=\"https://fake.example/\"' HREF = \"https://news.example.com/r/c1?t=a&amp;u=b\">Shop &amp; save",
        '<a href="https://news.example.com/r/c2?t=a&amp;u=b">unquoted</a>',
        "<a href='https://news.example.com/r/c3?t=a&amp;u=b'>single</a>",
        "<img alt=\"<a href='https://alt.example/'>\" src=\"https://img.example/x.png\">",
        '<title><a href="https://title.example/"></title>',
        '<textarea><a href="https://textarea.example/"></textarea><abbr title="x">abbr</abbr><address>addr</address>',
        '<a\n   href="https://news.example.com/r/c4?t=a&amp;u=b"\n   target="_blank">multi\nline</a>',
        '<area shape="rect" coords="0,0,1,1" href="https://news.example.com/r/c5?t=a&amp;u=b"/>',
        '<A HREF="https://news.example.com/r/c6?t=a&amp;u=b">UPPER</A>',
    ):
        assert kept in out, kept
    # nothing else changed: removing the rewritten hrefs gives back the original text layout
    assert out.count("\n") == TRICKY.count("\n")


def test_rewrite_is_identity_without_links() -> None:
    html = "<p>No links here &amp; <b>bold</b></p><!-- <a href='https://x.example/'> -->"
    assert rewrite_links(html, Shortener()) == html


def test_shortener_returning_same_url_and_unbalanced_html() -> None:
    html = '<div><a href="https://a.example/">a<p><a href="https://b.example/" <b>broken'
    out = rewrite_links(html, lambda url: url)
    assert out == html  # no UTM given, shortener is identity


def test_open_pixel_before_body_end() -> None:
    html = "<html><body><p>x</p></body></html>"
    out = add_open_pixel(html, "https://news.example.com/t/o/abc?x=1&y=2")
    assert out.endswith('style="display:block;height:1px;width:1px;border:0;margin:0;padding:0"></body></html>')
    assert 'src="https://news.example.com/t/o/abc?x=1&amp;y=2"' in out
    assert 'width="1" height="1"' in out and 'alt=""' in out
    assert add_open_pixel("<p>fragment</p>", "https://p/").startswith("<p>fragment</p><img ")
    # the last </body> wins (a </body> inside a comment earlier does not matter)
    tricky = "<!-- </body> --><body>x</BODY >"
    assert add_open_pixel(tricky, "https://p/").endswith("x" + '<img src="https://p/" alt="" width="1" height="1" border="0" style="display:block;height:1px;width:1px;border:0;margin:0;padding:0"></BODY >')
