from __future__ import annotations

from pathlib import Path

import pytest

from vecpipe.errors import ConfigError
from vecpipe.secrets import (
    KEY_FILE_NAME,
    PREFIX,
    KeyFileSecretBox,
    SecretBox,
    derive_fernet_key,
    is_encrypted,
)

KEY = "correct horse battery staple"
API_KEY = "sk-live-0123456789abcdef"


def test_round_trip_with_any_key_string() -> None:
    for key in (KEY, "x", "ключ with ünïcode", "a" * 500):
        box = SecretBox(key)
        token = box.encrypt(API_KEY)
        assert token.startswith(PREFIX)
        assert API_KEY not in token
        assert box.decrypt(token) == API_KEY


def test_encryption_is_randomised_and_unicode_safe() -> None:
    box = SecretBox(KEY)
    assert box.encrypt(API_KEY) != box.encrypt(API_KEY)
    assert box.decrypt(box.encrypt("pässwörd ✓")) == "pässwörd ✓"
    assert box.decrypt(box.encrypt("")) == ""


def test_is_encrypted() -> None:
    box = SecretBox(KEY)
    assert is_encrypted(box.encrypt(API_KEY))
    assert SecretBox.is_encrypted(box.encrypt(API_KEY))
    assert not is_encrypted(API_KEY)
    assert not is_encrypted("")


def test_wrong_key_is_a_clear_config_error_without_secrets() -> None:
    token = SecretBox(KEY).encrypt(API_KEY)
    with pytest.raises(ConfigError, match="VECPIPE_SECRET_KEY") as info:
        SecretBox("another key").decrypt(token)
    message = str(info.value)
    assert API_KEY not in message
    assert KEY not in message
    assert "another key" not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    "value", [API_KEY, PREFIX + "not-a-token", PREFIX, PREFIX + "ü", "enc:v2:whatever"]
)
def test_garbage_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        SecretBox(KEY).decrypt(value)
    assert API_KEY not in str(info.value)


def test_tampered_token_is_rejected() -> None:
    box = SecretBox(KEY)
    token = box.encrypt(API_KEY)
    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    with pytest.raises(ConfigError):
        box.decrypt(flipped)


def test_rotation_keeps_old_values_readable_and_moves_them_to_the_new_key() -> None:
    old = SecretBox("old key")
    token = old.encrypt(API_KEY)
    rotating = SecretBox("new key", old_keys=["old key"])
    assert rotating.decrypt(token) == API_KEY
    rotated = rotating.rotate(token)
    assert rotated.startswith(PREFIX)
    assert rotated != token
    assert SecretBox("new key").decrypt(rotated) == API_KEY
    with pytest.raises(ConfigError):
        old.decrypt(rotated)
    with pytest.raises(ConfigError):
        SecretBox("new key").decrypt(token)


def test_new_values_use_the_first_key() -> None:
    token = SecretBox("new key", old_keys=["old key"]).encrypt(API_KEY)
    assert SecretBox("new key").decrypt(token) == API_KEY
    with pytest.raises(ConfigError):
        SecretBox("old key").decrypt(token)


def test_rotate_with_unknown_key_fails_clearly() -> None:
    token = SecretBox("lost key").encrypt(API_KEY)
    with pytest.raises(ConfigError, match="none of the configured keys"):
        SecretBox("new key", old_keys=["old key"]).rotate(token)


def test_empty_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty"):
        SecretBox("")
    with pytest.raises(ConfigError):
        SecretBox(KEY, old_keys=[""])


def test_key_derivation_is_stable_and_key_specific() -> None:
    assert derive_fernet_key(KEY) == derive_fernet_key(KEY)
    assert derive_fernet_key(KEY) != derive_fernet_key(KEY + " ")
    assert len(derive_fernet_key(KEY)) == 44  # urlsafe base64 of 32 bytes


def test_repr_hides_keys() -> None:
    box = SecretBox(KEY, old_keys=["old key"])
    assert KEY not in repr(box)
    assert "old key" not in repr(box)
    assert repr(box) == "SecretBox(keys=2)"
    assert not any(KEY in str(v) for v in vars(box).values())


def test_a_key_file_is_made_once_0600_and_shared_by_every_box(tmp_path: Path) -> None:
    path = tmp_path / "data" / KEY_FILE_NAME
    first, second = KeyFileSecretBox(path), KeyFileSecretBox(path)
    with pytest.raises(ConfigError, match="is missing"):
        first.decrypt(SecretBox("other").encrypt("x"))  # nothing to decrypt with, none made
    assert not path.exists()
    sealed = first.encrypt("sk-gateway")
    assert path.stat().st_mode & 0o777 == 0o600
    assert second.encrypt("other") and second.decrypt(sealed) == "sk-gateway"
    assert SecretBox(path.read_text().strip()).decrypt(sealed) == "sk-gateway"
    assert "sk-" not in repr(first) and path.read_text().strip() not in repr(first)
