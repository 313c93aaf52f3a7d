"""Property tests: parsers and verifiers never crash on arbitrary input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.channels.email.inbound import InboundKind, parse_inbound
from nurture.channels.email.links import rewrite_links
from nurture.tracking.tokens import TokenSigner

SIGNER = TokenSigner("property-test-secret-01234567")


@settings(derandomize=True, deadline=None)
@given(st.text(max_size=200))
def test_verify_never_raises(token: str) -> None:
    assert SIGNER.verify(token) is None


@settings(derandomize=True, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**63 - 1), max_size=8), st.sampled_from(["url", "mail"]))
def test_sign_verify_round_trip(ids: list[int], encoding: str) -> None:
    token = SIGNER.sign("k", *ids, encoding=encoding)  # type: ignore[arg-type]
    data = SIGNER.verify(token)
    assert data is not None and data.ids == tuple(ids)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_inbound_never_raises(raw: bytes) -> None:
    assert parse_inbound(raw, SIGNER).kind in InboundKind


HEADERS = st.sampled_from(
    ["From: MAILER-DAEMON@x.example", "Content-Type: multipart/report; boundary=b", "Auto-Submitted: auto-replied",
     "In-Reply-To: <abc@x>", "Subject: Undeliverable", "Content-Type: message/delivery-status", "To: bounce+zz@x"]
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(HEADERS, max_size=5), st.text(max_size=500))
def test_parse_inbound_never_raises_on_bounce_like_input(headers: list[str], body: str) -> None:
    raw = "\n".join(headers) + "\n\n" + body
    assert parse_inbound(raw, SIGNER).kind in InboundKind


PIECES = st.sampled_from([*"<a href='\"= >/!-x:", "https://e.example/", "<!--", "-->", "<a ", "href=", "<script>"])


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(PIECES, max_size=60).map("".join))
def test_rewrite_links_keeps_non_link_text(html: str) -> None:
    out = rewrite_links(html, lambda url: "https://t.example/r/1")
    if "https://e.example/" not in html:
        assert out == html


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(PIECES, max_size=60).map("".join))
def test_rewrite_links_is_idempotent(html: str) -> None:
    def shorten(url: str) -> str:
        return "https://t.example/r/1"

    once = rewrite_links(html, shorten, skip_prefixes=("https://t.example/",))
    assert rewrite_links(once, shorten, skip_prefixes=("https://t.example/",)) == once
