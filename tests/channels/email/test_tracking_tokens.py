"""Signed tokens: round trip, tampering, key rotation, forgery."""

from __future__ import annotations

import base64

import pytest

from nurture.config import load_settings
from nurture.tracking.tokens import (
    KIND_CLICK,
    KIND_MESSAGE,
    KIND_OPEN,
    TokenData,
    TokenSigner,
    message_token,
)

KEY = "current-secret-key-0123456789"
OLD = "previous-secret-key-012345678"


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner(KEY)


def test_round_trip_url_and_mail(signer: TokenSigner) -> None:
    for encoding in ("url", "mail"):
        token = signer.sign(KIND_CLICK, 42, 7_000_000_000, encoding=encoding)  # type: ignore[arg-type]
        assert signer.verify(token) == TokenData(KIND_CLICK, (42, 7_000_000_000))
        assert signer.verify(token, kind=KIND_CLICK) is not None


def test_tokens_are_compact_and_url_safe(signer: TokenSigner) -> None:
    token = signer.sign(KIND_OPEN, 123456)
    assert len(token) <= 40
    assert all(c.isalnum() or c in "-_" for c in token)
    mail = message_token(signer, 123456789)
    assert mail == mail.lower() and mail.isalnum()
    assert len("bounce+" + mail) <= 64  # RFC 5321 local-part limit


def test_mail_tokens_survive_case_folding(signer: TokenSigner) -> None:
    token = message_token(signer, 99)
    assert signer.verify(token.upper(), kind=KIND_MESSAGE) == TokenData(KIND_MESSAGE, (99,))


def test_wrong_kind_is_refused(signer: TokenSigner) -> None:
    token = signer.sign(KIND_OPEN, 5)
    assert signer.verify(token, kind=KIND_CLICK) is None


@pytest.mark.parametrize("encoding", ["url", "mail"])
def test_every_single_byte_change_is_refused(signer: TokenSigner, encoding: str) -> None:
    token = signer.sign(KIND_CLICK, 10, 20, encoding=encoding)  # type: ignore[arg-type]
    alphabet = "abcdefghijklmnopqrstuvwxyz234567" if encoding == "mail" else (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    for index in range(len(token)):
        for replacement in alphabet[:6]:
            if token[index].lower() == replacement.lower():
                continue
            tampered = token[:index] + replacement + token[index + 1 :]
            assert signer.verify(tampered) is None, (index, replacement)


def test_edited_payload_is_refused(signer: TokenSigner) -> None:
    token = signer.sign(KIND_OPEN, 1)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-17] ^= 0x01  # the last id byte: trace 1 -> trace 0
    edited = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert signer.verify(edited) is None


@pytest.mark.parametrize(
    "garbage",
    ["", "x", "====", "not a token", "a" * 500, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "%00%01", "é" * 20],
)
def test_garbage_is_refused(signer: TokenSigner, garbage: str) -> None:
    assert signer.verify(garbage) is None


def test_truncated_token_is_refused(signer: TokenSigner) -> None:
    token = signer.sign(KIND_OPEN, 77)
    for cut in range(1, len(token)):
        assert signer.verify(token[:cut]) is None


def test_old_key_still_verifies_and_new_tokens_use_new_key() -> None:
    old_token = TokenSigner(OLD).sign(KIND_OPEN, 3)
    rotated = TokenSigner(KEY, [OLD])
    assert rotated.verify(old_token) == TokenData(KIND_OPEN, (3,))
    new_token = rotated.sign(KIND_OPEN, 3)
    assert TokenSigner(KEY).verify(new_token) is not None
    assert TokenSigner(OLD).verify(new_token) is None
    # once the old key is dropped, its tokens stop working
    assert TokenSigner(KEY).verify(old_token) is None


def test_forged_with_wrong_key_is_refused(signer: TokenSigner) -> None:
    forged = TokenSigner("attacker-chosen-key-000000").sign(KIND_OPEN, 1)
    assert signer.verify(forged) is None
    forged_mail = message_token(TokenSigner("attacker-chosen-key-000000"), 1)
    assert signer.verify(forged_mail) is None


def test_from_settings_reads_old_keys(tmp_path: object) -> None:
    settings = load_settings(
        {
            "NURTURE_DATA_DIR": str(tmp_path),
            "NURTURE_SECRET_KEY": KEY,
            "NURTURE_OLD_SECRET_KEYS": f" {OLD} , another-old-key-0123456 ",
        }
    )
    signer = TokenSigner.from_settings(settings)
    assert signer.verify(TokenSigner(OLD).sign(KIND_OPEN, 8)) is not None
    assert signer.verify(TokenSigner("another-old-key-0123456").sign(KIND_OPEN, 8)) is not None
    assert TokenSigner(KEY).verify(signer.sign(KIND_OPEN, 8)) is not None


@pytest.mark.parametrize("bad", [("Open", (1,)), ("", (1,)), ("open", (-1,)), ("open", tuple(range(9)))])
def test_sign_rejects_bad_input(signer: TokenSigner, bad: tuple[str, tuple[int, ...]]) -> None:
    kind, ids = bad
    with pytest.raises(ValueError):
        signer.sign(kind, *ids)


def test_no_ids_and_large_ids(signer: TokenSigner) -> None:
    assert signer.verify(signer.sign("view")) == TokenData("view", ())
    big = 2**63 - 1
    assert signer.verify(signer.sign("x", big, 0)) == TokenData("x", (big, 0))
