"""A ClickHouse server by URL: user, password, TLS and its checks reach clickhouse-connect."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.config import ClickHouseSettings
from sinks.clickhouse.client import SESSION_SETTINGS, _redacted, server_client_args


def test_https_url_with_credentials_and_a_ca_bundle() -> None:
    settings = ClickHouseSettings(
        url="https://analyst:p%40ss%3Aword@ch.example.com", ca_cert=Path("/etc/ssl/ch.pem")
    )
    args = server_client_args(settings)
    assert args["host"] == "ch.example.com" and args["port"] == 8443
    assert (args["username"], args["password"]) == ("analyst", "p@ss:word")
    assert args["secure"] is True and args["verify"] is True
    assert args["ca_cert"] == "/etc/ssl/ch.pem"
    assert args["settings"] == SESSION_SETTINGS


def test_plain_http_defaults_and_verification_off() -> None:
    args = server_client_args(ClickHouseSettings(url="http://127.0.0.1", verify=False))
    assert (args["port"], args["username"], args["password"], args["secure"]) == (
        8123,
        "default",
        "",
        False,
    )
    assert "verify" not in args  # TLS options only apply to https
    insecure = server_client_args(ClickHouseSettings(url="https://h:9443", verify=False))
    assert insecure["port"] == 9443 and insecure["verify"] is False


def test_other_schemes_are_refused_and_secrets_never_logged() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        server_client_args(ClickHouseSettings(url="clickhouse://h:9000"))
    assert _redacted("https://u:secret@h:8443/x") == "https://h:8443"
