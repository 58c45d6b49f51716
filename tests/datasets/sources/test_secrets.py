"""Import credentials at rest: Fernet under a key derived from SECRET_KEY."""

from __future__ import annotations

from typing import Any

import pytest

from datasets.errors import InvalidImport
from datasets.secrets import credentials_decrypt, credentials_encrypt

CREDS = {"access_key": "AKIAEXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"}


def test_round_trip_without_clear_text() -> None:
    token = credentials_encrypt(CREDS)
    assert "AKIAEXAMPLE" not in token and "wJalr" not in token
    assert credentials_decrypt(token) == CREDS
    assert credentials_encrypt(CREDS) != token  # random IV: equal inputs, different tokens


def test_empty() -> None:
    assert credentials_encrypt({}) == ""
    assert credentials_decrypt("") == {}


def test_tampered_token_is_refused() -> None:
    token = credentials_encrypt(CREDS)
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    for bad in (flipped, token[:-4], "not a token", "gAAAAA" + "x" * 80, "é"):
        with pytest.raises(InvalidImport, match="stored credentials cannot be decrypted"):
            credentials_decrypt(bad)


def test_other_secret_key_is_refused_and_fallbacks_work(settings: Any) -> None:
    settings.SECRET_KEY = "first-key-" + "x" * 40
    token = credentials_encrypt(CREDS)
    settings.SECRET_KEY = "second-key-" + "y" * 40
    with pytest.raises(InvalidImport, match="stored credentials cannot be decrypted"):
        credentials_decrypt(token)
    settings.SECRET_KEY_FALLBACKS = ["first-key-" + "x" * 40]
    assert credentials_decrypt(token) == CREDS  # rotation keeps running imports readable


def test_values_must_be_short_strings() -> None:
    with pytest.raises(InvalidImport, match="must be a string"):
        credentials_encrypt({"access_key": 123})  # type: ignore[dict-item]
    with pytest.raises(InvalidImport, match="longer than 4096 bytes"):
        credentials_encrypt({"session_token": "x" * 5000})
