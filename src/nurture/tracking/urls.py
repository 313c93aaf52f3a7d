"""The public tracking URLs and the tokens they carry.

Routes (to be served by the web app; every handler verifies the token with
:meth:`~nurture.tracking.tokens.TokenSigner.verify` and its kind, and answers 404 writing
nothing when it does not verify):

=====================================  =============================  ======================
URL                                     token kind and ids              handler
=====================================  =============================  ======================
``/t/o/<token>.gif``                    ``open``  (trace id)            1×1 GIF, records open
``/t/c/<token>``                        ``click`` (link id, trace id)   302 to the stored URL
``/unsubscribe/<token>``                ``unsub`` (trace id)            GET page; POST one-click
``/t/v/<token>``                        ``view``  (trace id)            the web version
=====================================  =============================  ======================

A click token names the stored link row, never the target URL itself, so a redirect can
only go to a URL that was stored when the message was composed.
"""

from __future__ import annotations

from dataclasses import dataclass

from nurture.tracking.tokens import (
    KIND_CLICK,
    KIND_OPEN,
    KIND_UNSUBSCRIBE,
    TokenSigner,
)

KIND_VIEW = "view"
OPEN_PREFIX = "/t/o/"
CLICK_PREFIX = "/t/c/"
VIEW_PREFIX = "/t/v/"
UNSUBSCRIBE_PREFIX = "/unsubscribe/"


def open_url(base_url: str, signer: TokenSigner, trace_id: int) -> str:
    return f"{base_url.rstrip('/')}{OPEN_PREFIX}{signer.sign(KIND_OPEN, trace_id)}.gif"


def click_url(base_url: str, signer: TokenSigner, link_id: int, trace_id: int) -> str:
    return f"{base_url.rstrip('/')}{CLICK_PREFIX}{signer.sign(KIND_CLICK, link_id, trace_id)}"


def unsubscribe_url(base_url: str, signer: TokenSigner, trace_id: int) -> str:
    return f"{base_url.rstrip('/')}{UNSUBSCRIBE_PREFIX}{signer.sign(KIND_UNSUBSCRIBE, trace_id)}"


def view_url(base_url: str, signer: TokenSigner, trace_id: int) -> str:
    return f"{base_url.rstrip('/')}{VIEW_PREFIX}{signer.sign(KIND_VIEW, trace_id)}"


@dataclass(frozen=True)
class TraceUrls:
    """The per-message tracking URLs of one trace."""

    open: str
    unsubscribe: str
    view: str

    @classmethod
    def build(cls, base_url: str, signer: TokenSigner, trace_id: int) -> TraceUrls:
        return cls(
            open=open_url(base_url, signer, trace_id),
            unsubscribe=unsubscribe_url(base_url, signer, trace_id),
            view=view_url(base_url, signer, trace_id),
        )


def token_from_path(path: str, prefix: str, suffix: str = "") -> str | None:
    """The token part of a tracking path (``/t/o/<token>.gif`` → ``<token>``), or None."""
    if not path.startswith(prefix):
        return None
    token = path[len(prefix) :]
    if suffix:
        if not token.endswith(suffix):
            return None
        token = token[: -len(suffix)]
    return token or None
