from __future__ import annotations

from pathlib import Path

import pytest

from schemas.config import ConfigError, hash_key, load_config


def test_defaults_are_valid_and_local() -> None:
    config = load_config(None, env={})
    assert config.kafka.bootstrap_servers.startswith("127.0.0.1")
    assert config.clickhouse.url is None and config.chdb_path.name == "clickhouse"


def test_file_then_env_with_interpolation(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "ingress:\n  port: ${PORT:-8181}\nkeys:\n  - key: ${SECRET}\n    tenant: acme\n"
    )
    config = load_config(path, env={"SECRET": "s3cret", "TOLLGATE__INGRESS__HOST": "0.0.0.0"})
    assert config.ingress.port == 8181 and config.ingress.host == "0.0.0.0"
    assert config.keys[0].digest == hash_key("s3cret")
    assert "s3cret" not in repr(config)


def test_errors_name_the_key_path(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "kafka:\n  bootstrap_server: x\ningress:\n  port: 70000\nkeys:\n  - tenant: a\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert "kafka.bootstrap_server" in message and "spelling" in message
    assert "ingress.port" in message
    assert "keys.0" in message and "exactly one of `key` or `key_sha256`" in message


def test_missing_variable_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("fake_upstream:\n  api_key: ${OPENAI_API_KEY}\n")
    with pytest.raises(ConfigError, match="export OPENAI_API_KEY"):
        load_config(path, env={})


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", env={})


def test_the_demo_config_is_valid_and_covers_every_provider_kind() -> None:
    from infra.cli import DEMO_CONFIG

    config = load_config(DEMO_CONFIG, env={})
    kinds = {p.kind for p in config.providers.values()}
    assert kinds >= {"openai", "azure", "anthropic", "gemini", "bedrock", "mistral", "cohere"}
    assert config.admin.digest is not None
