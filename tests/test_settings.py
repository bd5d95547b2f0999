"""Settings are checked when they are read: a value out of range is one line that names the
variable and what it must be, and never repeats a secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vecpipe.errors import ConfigError
from vecpipe.settings import Limits, Settings, check_data_dir, read_settings

NONSENSE = [
    ({"VECPIPE_WORKER_BATCH_SIZE": "0"}, "VECPIPE_WORKER_BATCH_SIZE must be at least 1 (got '0')"),
    ({"VECPIPE_WORKER_BATCH_SIZE": "-1"}, "VECPIPE_WORKER_BATCH_SIZE must be at least 1"),
    ({"VECPIPE_WORKER_CONCURRENCY": "0"}, "VECPIPE_WORKER_CONCURRENCY must be at least 1"),
    ({"VECPIPE_LOCAL_BATCH_SIZE": "0"}, "VECPIPE_LOCAL_BATCH_SIZE must be at least 1"),
    ({"VECPIPE_LIMIT_MAX_BODY_BYTES": "-5"}, "VECPIPE_LIMIT_MAX_BODY_BYTES must be at least 1"),
    ({"VECPIPE_LIMIT_MAX_TEXT_BYTES": "0"}, "VECPIPE_LIMIT_MAX_TEXT_BYTES must be at least 1"),
    ({"VECPIPE_MAX_ATTEMPTS": "0"}, "VECPIPE_MAX_ATTEMPTS must be at least 1 (got '0')"),
    ({"VECPIPE_PORT": "99999"}, "VECPIPE_PORT must be at most 65535 (got '99999')"),
    ({"VECPIPE_PORT": "0"}, "VECPIPE_PORT must be at least 1"),
    ({"VECPIPE_PORT": "http"}, "VECPIPE_PORT must be a valid integer"),
    ({"VECPIPE_LEASE_SECONDS": "0"}, "VECPIPE_LEASE_SECONDS must be more than 0"),
    ({"VECPIPE_WORKER_POLL_SECONDS": "-1"}, "VECPIPE_WORKER_POLL_SECONDS must be more than 0"),
    ({"VECPIPE_RETRY_BASE_SECONDS": "0"}, "VECPIPE_RETRY_BASE_SECONDS must be more than 0"),
    (
        {"VECPIPE_RETRY_BASE_SECONDS": "10", "VECPIPE_RETRY_MAX_SECONDS": "5"},
        "VECPIPE_RETRY_MAX_SECONDS must be at least VECPIPE_RETRY_BASE_SECONDS (10)",
    ),
    ({"VECPIPE_ADMIN_TOKEN": ""}, "VECPIPE_ADMIN_TOKEN must be at least 16 characters (it is"),
    ({"VECPIPE_ADMIN_TOKEN": "0123456789"}, "VECPIPE_ADMIN_TOKEN must be at least 16 characters"),
    ({"VECPIPE_ADMIN_TOKEN": " padded-admin-token-0 "}, "VECPIPE_ADMIN_TOKEN must not start"),
    ({"VECPIPE_METRICS_TOKEN": ""}, "VECPIPE_METRICS_TOKEN must be at least 16 characters"),
    ({"VECPIPE_SECRET_KEY": ""}, "VECPIPE_SECRET_KEY must not be empty"),
    ({"VECPIPE_LOG_LEVEL": "loud"}, "VECPIPE_LOG_LEVEL must be one of CRITICAL"),
    ({"VECPIPE_STORE": "redis"}, "VECPIPE_STORE must be 'edge' or 'qdrant' (got 'redis')"),
    ({"VECPIPE_QUOTA_INGEST_BURST": "0"}, "VECPIPE_QUOTA_INGEST_BURST must be at least 1"),
    ({"VECPIPE_QUOTA_TENANTS": "{oops"}, "VECPIPE_QUOTA_TENANTS must be valid JSON"),
    (
        {"VECPIPE_QUOTA_TENANTS": '{"big": {"max_records": -1}}'},
        "VECPIPE_QUOTA_TENANTS (big.max_records) must be at least 0",
    ),
    (
        {"VECPIPE_LIMIT_MAX_INFLIGHT_BODY_BYTES": "1024"},
        "VECPIPE_LIMIT_MAX_INFLIGHT_BODY_BYTES must be at least VECPIPE_LIMIT_MAX_BODY_BYTES",
    ),
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VECPIPE_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("env", "says"), NONSENSE, ids=lambda v: str(v)[:40])
def test_a_nonsense_setting_is_one_line_naming_its_variable(
    env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as refused:
        read_settings()

    assert says in refused.value.message
    assert "\n" not in refused.value.message


def test_every_problem_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECPIPE_PORT", "99999")
    monkeypatch.setenv("VECPIPE_MAX_ATTEMPTS", "0")
    monkeypatch.setenv("VECPIPE_LIMIT_MAX_BODY_BYTES", "-5")

    with pytest.raises(ConfigError) as refused:
        read_settings()

    for name in ("VECPIPE_PORT", "VECPIPE_MAX_ATTEMPTS", "VECPIPE_LIMIT_MAX_BODY_BYTES"):
        assert name in refused.value.message


def test_a_command_line_flag_is_named_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECPIPE_PORT", "8001")

    with pytest.raises(ConfigError, match=r"^--port must be at most 65535 \(got 70000\)$"):
        read_settings({"port": ("--port", 70000)})
    assert read_settings({"port": ("--port", 9000)}).port == 9000


def test_a_secret_is_never_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither in our one line nor in pydantic's own error (a library user's traceback)."""
    monkeypatch.setenv("VECPIPE_ADMIN_TOKEN", "sEcReT-42")
    monkeypatch.setenv("VECPIPE_METRICS_TOKEN", "m-sEcReT-43")

    with pytest.raises(ConfigError) as refused:
        read_settings()
    with pytest.raises(ValueError) as raw:
        Settings()

    assert "VECPIPE_ADMIN_TOKEN" in refused.value.message
    for shown in (refused.value.message, str(raw.value)):
        assert "sEcReT" not in shown


def test_defaults_and_sensible_values_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_settings() == Settings()
    monkeypatch.setenv("VECPIPE_ADMIN_TOKEN", "a" * 16)
    monkeypatch.setenv("VECPIPE_LOG_LEVEL", "debug")
    monkeypatch.setenv("VECPIPE_EMBED_CACHE_ITEMS", "0")  # 0: no cache
    monkeypatch.setenv("VECPIPE_SHUTDOWN_GRACE_SECONDS", "0")  # 0: release at once
    settings = read_settings()
    assert settings.log_level == "DEBUG" and settings.embed_cache_items == 0
    assert Limits().max_inflight_body_bytes >= Limits().max_body_bytes


def test_data_dir_is_made_when_missing(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    check_data_dir(Settings(data_dir=data_dir))
    assert data_dir.is_dir()


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a dir")

    with pytest.raises(ConfigError, match=f"VECPIPE_DATA_DIR {path} must be a directory .*"):
        check_data_dir(Settings(data_dir=path))
