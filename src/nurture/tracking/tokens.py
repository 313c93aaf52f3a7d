"""Signed tokens for tracking URLs, Message-IDs and VERP return paths.

A token carries a *kind* (a short lowercase word such as ``open``, ``click``, ``unsub`` or
``msg``) and a tuple of non-negative integer ids (a trace id, a link id…), followed by a
128-bit HMAC-SHA256 tag. Layout of the signed bytes::

    version (1) | len(kind) (1) | kind (ascii) | ids as unsigned LEB128 varints | tag (16)

Two encodings of the same bytes exist:

* ``url`` — base64url without padding, for links (``/t/o/<token>``); case-sensitive.
* ``mail`` — lowercase base32 without padding, for ``<token@domain>`` Message-IDs and
  ``bounce+<token>@domain`` return paths. Some MTAs lowercase local parts (Exim with its
  default ``caseful_local_part = false``, various forwarders), which would break a
  case-sensitive token; base32 survives that. A signed ``msg`` token for one trace is ~35
  characters, so ``bounce+<token>`` stays inside the 64-octet local-part limit.

Keys: the tag is computed with a key *derived* from each secret (HMAC(secret, purpose)), so
the raw secret is never used directly. New tokens are signed with ``NURTURE_SECRET_KEY``;
verification accepts that key and every key of ``NURTURE_OLD_SECRET_KEYS`` (comma
separated), so the secret can be rotated without breaking links already mailed.

:meth:`TokenSigner.verify` returns ``None`` for anything not produced by a current or old
key: malformed input, a changed byte, a truncated tag, a forged tag. Callers answer 404 and
write nothing. Tag comparison is constant-time (:func:`hmac.compare_digest`), and every
key is tried even after a match so timing does not reveal which key signed the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from nurture.config import Settings

VERSION = 1
TAG_BYTES = 16
MAX_IDS = 8
_PURPOSE = b"nurture/tracking-token/v1"
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
_URL_ALPHABET = re.compile(r"^[A-Za-z0-9_-]+$")
_MAIL_ALPHABET = re.compile(r"^[A-Za-z2-7]+$")
# A token longer than this is not one of ours; refuse before decoding anything.
MAX_TOKEN_LENGTH = 200

Encoding = Literal["url", "mail"]

# Kinds used by the email channel (any short lowercase word is accepted).
KIND_MESSAGE = "msg"  # Message-ID and VERP return path of one sent message: ids = (trace id,)
KIND_OPEN = "open"  # open pixel: ids = (trace id,)
KIND_CLICK = "click"  # tracked link: ids = (link id, trace id)
KIND_UNSUBSCRIBE = "unsub"  # unsubscribe page / one-click POST: ids = (trace id,)


@dataclass(frozen=True)
class TokenData:
    """What a valid token says."""

    kind: str
    ids: tuple[int, ...]


def _derive(secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varints(data: bytes) -> tuple[int, ...] | None:
    ids: list[int] = []
    value = shift = 0
    pending = False
    for byte in data:
        value |= (byte & 0x7F) << shift
        pending = True
        if byte & 0x80:
            shift += 7
            if shift > 63:
                return None
        else:
            ids.append(value)
            value = shift = 0
            pending = False
    if pending or len(ids) > MAX_IDS:
        return None
    return tuple(ids)


_KIND_PREFIXES: dict[str, bytes] = {}


def _kind_prefix(kind: str) -> bytes:
    """``version | len(kind) | kind`` (validated once per kind)."""
    prefix = _KIND_PREFIXES.get(kind)
    if prefix is None:
        if not isinstance(kind, str) or not _KIND_RE.match(kind):
            raise ValueError(f"token kind must be a short lowercase word, got {kind!r}")
        prefix = bytes([VERSION, len(kind)]) + kind.encode("ascii")
        if len(_KIND_PREFIXES) < 256:
            _KIND_PREFIXES[kind] = prefix
    return prefix


def _pack(kind: str, ids: Sequence[int]) -> bytes:
    prefix = _kind_prefix(kind)
    if len(ids) > MAX_IDS:
        raise ValueError(f"a token carries at most {MAX_IDS} ids")
    body = bytearray(prefix)
    for value in ids:
        if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"token ids must be non-negative integers, got {value!r}")
        if value < 0 or value >= 2**63:
            raise ValueError(f"token ids must be non-negative integers, got {value!r}")
        if value < 0x80:
            body.append(value)
        else:
            body += _varint(value)
    return bytes(body)


def _unpack(payload: bytes) -> TokenData | None:
    if len(payload) < 3 or payload[0] != VERSION:
        return None
    kind_len = payload[1]
    if len(payload) < 2 + kind_len:
        return None
    try:
        kind = payload[2 : 2 + kind_len].decode("ascii")
    except UnicodeDecodeError:
        return None
    if not _KIND_RE.match(kind):
        return None
    ids = _read_varints(payload[2 + kind_len :])
    if ids is None:
        return None
    return TokenData(kind, ids)


def _decode_url(token: str) -> bytes | None:
    if not _URL_ALPHABET.match(token) or len(token) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None


def _decode_mail(token: str) -> bytes | None:
    if not _MAIL_ALPHABET.match(token):
        return None
    upper = token.upper()
    try:
        return base64.b32decode(upper + "=" * (-len(upper) % 8))
    except (binascii.Error, ValueError):
        return None


class TokenSigner:
    """Signs with the newest key, verifies with any configured key."""

    def __init__(self, secret_key: str, old_keys: Iterable[str] = ()) -> None:
        if not secret_key:
            raise ValueError("a secret key is required to sign tokens")
        secrets = [secret_key, *(k for k in old_keys if k and k != secret_key)]
        self._keys: tuple[bytes, ...] = tuple(_derive(s) for s in secrets)
        # Keyed HMAC states, copied per token: the key schedule is paid once, not per tag.
        self._macs = {key: hmac.new(key, digestmod=hashlib.sha256) for key in self._keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSigner:
        return cls.from_values(settings.secret_key, settings.extra)

    @classmethod
    def from_values(cls, secret_key: str, extra: Mapping[str, str]) -> TokenSigner:
        old = extra.get("NURTURE_OLD_SECRET_KEYS", "")
        return cls(secret_key, [k.strip() for k in old.split(",") if k.strip()])

    def _tag(self, key: bytes, payload: bytes) -> bytes:
        mac = self._macs[key].copy()
        mac.update(payload)
        return mac.digest()[:TAG_BYTES]

    def sign(self, kind: str, *ids: int, encoding: Encoding = "url") -> str:
        """A token for ``kind`` and ``ids``; deterministic for a given key."""
        payload = _pack(kind, ids)
        raw = payload + self._tag(self._keys[0], payload)
        if encoding == "url":
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        if encoding == "mail":
            return base64.b32encode(raw).rstrip(b"=").decode("ascii").lower()
        raise ValueError(f"unknown token encoding {encoding!r}")

    def verify(self, token: str, kind: str | None = None) -> TokenData | None:
        """The token's data if a configured key signed it (and its kind matches), else None.

        Both encodings are accepted; a lowercase base32 string may also be valid base64url,
        so each decoding that yields bytes is checked and the tag decides.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        found: TokenData | None = None
        for raw in (_decode_url(token), _decode_mail(token)):
            if raw is None or len(raw) <= TAG_BYTES:
                continue
            payload, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
            matched = False
            for key in self._keys:  # no early exit: constant work whichever key matches
                matched |= hmac.compare_digest(self._tag(key, payload), tag)
            if matched and found is None:
                found = _unpack(payload)
        if found is None or (kind is not None and found.kind != kind):
            return None
        return found


def message_token(signer: TokenSigner, trace_id: int) -> str:
    """The mail-safe token of one outgoing message (its Message-ID and VERP address)."""
    return signer.sign(KIND_MESSAGE, trace_id, encoding="mail")
