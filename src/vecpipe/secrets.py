"""Encryption at rest for stored secrets (gateway API keys), keyed by `VECPIPE_SECRET_KEY`.

Values are Fernet tokens (AES-128-CBC + HMAC-SHA256, with a timestamp) behind a version
prefix, `enc:v1:<token>`, so an encrypted value is recognisable and the format can change.
The operator's secret may be any string: a 32-byte Fernet key is derived from it with HKDF
(SHA-256). Use a long random string; HKDF does not make a weak passphrase strong.

Rotation: construct `SecretBox(new_key, old_keys=[old_key])`. Values encrypted under any of
the keys decrypt; `encrypt` and `rotate` always use the first (new) key.

No key, derived key or plaintext appears in a message, a repr or a log.

Presented secrets (bearer tokens) are compared with `same_secret`, in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vecpipe.errors import ConfigError

PREFIX = "enc:v1:"
_HKDF_SALT = b"vecpipe.secrets"
_HKDF_INFO = b"vecpipe SecretBox v1 fernet key"


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time equality that does not leak the expected length either."""
    return hmac.compare_digest(
        hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest(),
        hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest(),
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for any other."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def derive_fernet_key(secret: str) -> bytes:
    """A urlsafe-base64 Fernet key derived from an arbitrary, non-empty secret string."""
    if not secret:
        raise ConfigError("the secret key must not be empty")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode("utf-8")))


def is_encrypted(value: str) -> bool:
    """Whether `value` looks like the output of `SecretBox.encrypt`."""
    return value.startswith(PREFIX)


class SecretBox:
    """Encrypts and decrypts short secrets with a key derived from `VECPIPE_SECRET_KEY`."""

    def __init__(self, key: str, old_keys: Sequence[str] = ()) -> None:
        fernets = [Fernet(derive_fernet_key(k)) for k in [key, *old_keys]]
        self._fernet = MultiFernet(fernets)
        self._key_count = len(fernets)

    def __repr__(self) -> str:
        return f"SecretBox(keys={self._key_count})"

    @staticmethod
    def is_encrypted(value: str) -> bool:
        return is_encrypted(value)

    def encrypt(self, plaintext: str) -> str:
        token = self._fernet.encrypt(plaintext.encode("utf-8"))
        return PREFIX + token.decode("ascii")

    def decrypt(self, value: str) -> str:
        token = self._token(value)
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            raise ConfigError(
                "cannot decrypt a stored secret: VECPIPE_SECRET_KEY is not the key it was "
                "encrypted with (or the value is corrupted); pass the old key for rotation"
            ) from None

    def rotate(self, value: str) -> str:
        """`value` re-encrypted under the current key (decryptable by any configured key)."""
        token = self._token(value)
        try:
            return PREFIX + self._fernet.rotate(token).decode("ascii")
        except InvalidToken:
            raise ConfigError(
                "cannot rotate a stored secret: none of the configured keys decrypts it"
            ) from None

    @staticmethod
    def _token(value: str) -> bytes:
        if not is_encrypted(value):
            raise ConfigError(f"not an encrypted secret (expected the {PREFIX!r} prefix)")
        try:
            return value[len(PREFIX) :].encode("ascii")
        except UnicodeEncodeError:
            raise ConfigError("an encrypted secret holds non-ASCII characters") from None
