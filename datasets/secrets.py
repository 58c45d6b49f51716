"""Credentials given for one import (S3 keys), encrypted for Import.secret so the database
never holds them in clear text.

Fernet (AES-128-CBC with HMAC-SHA256: encrypted and authenticated) with a key derived
from SECRET_KEY by HKDF-SHA256 under a fixed info string, so this key is useless for
anything else SECRET_KEY signs, and vice versa. Tokens made under a key listed in
SECRET_KEY_FALLBACKS still decrypt, so rotating SECRET_KEY does not break running
imports.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from datasets.errors import InvalidImport

# Binds derived keys to this use; bump the version to retire every stored token.
HKDF_INFO = b"labelvault/datasets/import-credentials/v1"
# A few keys and a session token fit in well under 4 KB of JSON.
MAX_CREDENTIALS_BYTES = 4096
UNDECRYPTABLE = "stored credentials cannot be decrypted"


def _fernet_for(secret: str | bytes) -> Fernet:
    material = secret.encode() if isinstance(secret, str) else secret
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def _fernet() -> MultiFernet:
    """SECRET_KEY first (it encrypts), then each of SECRET_KEY_FALLBACKS (decrypt only)."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(secret) for secret in secrets])


def credentials_encrypt(credentials: Mapping[str, str]) -> str:
    """Return a token for Import.secret holding `credentials` (string keys and values).

    An empty mapping gives "" (nothing to store). The token is authenticated: any change
    to it makes credentials_decrypt fail. Raises InvalidImport when a value is not a
    string or the whole is over MAX_CREDENTIALS_BYTES.
    """
    if not credentials:
        return ""
    for name, value in credentials.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidImport(f"credential {name!r} must be a string", field=str(name))
    payload = json.dumps(dict(credentials), sort_keys=True, separators=(",", ":")).encode()
    if len(payload) > MAX_CREDENTIALS_BYTES:
        raise InvalidImport(f"credentials are longer than {MAX_CREDENTIALS_BYTES} bytes")
    return _fernet().encrypt(payload).decode("ascii")


def credentials_decrypt(token: str) -> dict[str, str]:
    """Return the credentials a credentials_encrypt token holds ({} for "").

    Raises InvalidImport("stored credentials cannot be decrypted") when the token was
    made under another SECRET_KEY (and none of SECRET_KEY_FALLBACKS) or was altered.
    """
    if not token:
        return {}
    try:
        payload = _fernet().decrypt(token.encode("ascii"))
        values = json.loads(payload)
    except (InvalidToken, UnicodeError, ValueError):
        raise InvalidImport(UNDECRYPTABLE) from None
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        raise InvalidImport(UNDECRYPTABLE)
    return values
