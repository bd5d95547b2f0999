"""Encryption at rest for stored secrets (gateway API keys), keyed by `VECPIPE_SECRET_KEY`.

Values are Fernet tokens (AES-128-CBC + HMAC-SHA256, with a timestamp) behind a version
prefix, `enc:v1:<token>`, so an encrypted value is recognisable and the format can change.
The operator's secret may be any string: a 32-byte Fernet key is derived from it with HKDF
(SHA-256). Use a long random string; HKDF does not make a weak passphrase strong.

Rotation: construct `SecretBox(new_key, old_keys=[old_key])`. Values encrypted under any of
the keys decrypt; `encrypt` and `rotate` always use the first (new) key.

The embedded default needs no key setting: `KeyFileSecretBox` keeps a generated key in a
file of the data dir (`secret.key`, mode 0600), created the first time something is
encrypted, as n8n and Grafana do. It protects a copy of the database alone, not a copy of
the whole data dir: where the database is shared (PostgreSQL), the key must be the
operator's (`VECPIPE_SECRET_KEY`), the same in every process.

No key, derived key or plaintext appears in a message, a repr or a log.

Presented secrets (bearer tokens) are compared with `same_secret`, in constant time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vecpipe.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX = "enc:v1:"
KEY_FILE_NAME = "secret.key"
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
        self._key_count = 1 + len(old_keys)
        self._old_keys = list(old_keys)
        self._multi: MultiFernet | None = self._fernets(key)

    def _fernets(self, key: str) -> MultiFernet:
        return MultiFernet([Fernet(derive_fernet_key(k)) for k in [key, *self._old_keys]])

    def _fernet(self, *, create: bool) -> MultiFernet:
        """The keys; `create`: a key may be made for this (KeyFileSecretBox)."""
        del create
        assert self._multi is not None
        return self._multi

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={self._key_count})"

    @staticmethod
    def is_encrypted(value: str) -> bool:
        return is_encrypted(value)

    def encrypt(self, plaintext: str) -> str:
        token = self._fernet(create=True).encrypt(plaintext.encode("utf-8"))
        return PREFIX + token.decode("ascii")

    def decrypt(self, value: str) -> str:
        token = self._token(value)
        fernet = self._fernet(create=False)
        try:
            return fernet.decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            raise ConfigError(
                "cannot decrypt a stored secret: VECPIPE_SECRET_KEY is not the key it was "
                "encrypted with (or the value is corrupted); pass the old key for rotation"
            ) from None

    def rotate(self, value: str) -> str:
        """`value` re-encrypted under the current key (decryptable by any configured key)."""
        token = self._token(value)
        fernet = self._fernet(create=False)
        try:
            return PREFIX + fernet.rotate(token).decode("ascii")
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


class KeyFileSecretBox(SecretBox):
    """A SecretBox whose key is the data dir's `secret.key`, generated on the first encrypt.

    Decrypting without the file is a ConfigError that names it: the values stored under it
    cannot be read back without it (back it up with the database).
    """

    def __init__(self, path: Path, old_keys: Sequence[str] = ()) -> None:
        self.path = path
        self._key_count = 1 + len(old_keys)
        self._old_keys = list(old_keys)
        self._multi = None

    def _fernet(self, *, create: bool) -> MultiFernet:
        if self._multi is None:
            key = self._read()
            if key is None and create:
                key = self._create()
            if key is None:
                raise ConfigError(
                    f"a stored gateway key cannot be decrypted: VECPIPE_SECRET_KEY is not set "
                    f"and {self.path} (the key generated for this data dir) is missing"
                )
            self._multi = self._fernets(key)
        return self._multi

    def _read(self) -> str | None:
        try:
            key = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        if not key:
            raise ConfigError(f"{self.path} is empty: restore it, or set VECPIPE_SECRET_KEY")
        return key

    def _create(self) -> str:
        key = secrets.token_urlsafe(32)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another opener was first: its key is the key
            return self._read() or key
        with contextlib.closing(os.fdopen(fd, "w", encoding="ascii")) as out:
            out.write(key + "\n")
            out.flush()
            os.fsync(out.fileno())
        log.warning(
            "VECPIPE_SECRET_KEY is not set: generated a key for stored gateway API keys in %s "
            "(mode 0600); back it up with the data dir, or set VECPIPE_SECRET_KEY",
            self.path,
        )
        return key
