"""Tollgate's configuration: one validated model, loaded in two phases.

Phase one parses raw settings strictly (unknown keys are errors): defaults, then the YAML
file with ``${VAR}`` / ``${VAR:-default}`` interpolation, then ``TOLLGATE__SECTION__KEY``
environment variables. Phase two is pydantic validation of the whole, with cross-checks.
A bad value fails at start with the dotted path of the key and what to do.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from schemas.pricing import Price

ENV_PREFIX = "TOLLGATE__"
DEFAULT_HOME = Path(os.environ.get("TOLLGATE_HOME", Path.home() / ".tollgate"))


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Strict):
    bootstrap_servers: str = "127.0.0.1:9092"
    embedded: bool = Field(True, description="`tollgate up` starts the local broker")
    controller_port: int = Field(9093, ge=1, le=65535)


class ClickHouseSettings(_Strict):
    url: str | None = Field(None, description="http(s)://user:password@host:8123; unset = chDB")
    path: Path | None = Field(None, description="chDB data path; default <home>/clickhouse")
    database: str = Field("tollgate", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class SinkSettings(_Strict):
    group_id: str = "tollgate-sink"
    batch_max_rows: int = Field(5000, ge=1)
    batch_max_ms: int = Field(500, ge=10)
    query_host: str = "127.0.0.1"
    query_port: int = Field(8124, ge=1, le=65535)


class IngressSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    upstream_timeout_s: float = Field(60.0, gt=0)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    event_queue_max: int = Field(200_000, ge=100)


class UpstreamSettings(_Strict):
    name: str = "openai"
    base_url: str = "http://127.0.0.1:9100/v1"
    api_key: SecretStr | None = None


class ProcessorSettings(_Strict):
    app_id: str = "tollgate-processors"
    store: str = Field("rocksdb://", description="faust table store: rocksdb:// or memory://")
    web_port: int = Field(6066, ge=1, le=65535)


class KeySettings(_Strict):
    """A static gateway key. Give the hash (preferred) or the key itself; only hashes are kept."""

    key: SecretStr | None = None
    key_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    tenant: str = Field(min_length=1)
    team: str | None = None
    user: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> KeySettings:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("set exactly one of `key` or `key_sha256`")
        return self

    @property
    def digest(self) -> str:
        if self.key_sha256 is not None:
            return self.key_sha256
        assert self.key is not None
        return hash_key(self.key.get_secret_value())


class PriceSettings(_Strict):
    model: str
    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(None, ge=0)
    currency: str = "USD"
    effective_from: date = date(1970, 1, 1)

    def to_price(self) -> Price:
        return Price(**self.model_dump())


class TollgateConfig(_Strict):
    home: Path = DEFAULT_HOME
    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    sink: SinkSettings = SinkSettings()
    ingress: IngressSettings = IngressSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    processors: ProcessorSettings = ProcessorSettings()
    keys: tuple[KeySettings, ...] = ()
    pricing: tuple[PriceSettings, ...] = ()

    @property
    def chdb_path(self) -> Path:
        return self.clickhouse.path or self.home / "clickhouse"

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def processors_dir(self) -> Path:
        return self.home / "processors"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def prices(self) -> list[Price]:
        return [p.to_price() for p in self.pricing]


def hash_key(key: str) -> str:
    """API keys are stored and compared as sha256 hex; the key itself is never kept."""
    return hashlib.sha256(key.encode()).hexdigest()


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"${{{name}}} is not set: export {name} or write ${{{name}:-default}}")

    return _VAR.sub(substitute, text)


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source} is not a valid Tollgate config:"]
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        hint = " (remove it or check its spelling)" if err["type"] == "extra_forbidden" else ""
        lines.append(f"  {where}: {err['msg']}{hint}")
    return "\n".join(lines)


def default_config_path(env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    if env.get("TOLLGATE_CONFIG"):
        return Path(env["TOLLGATE_CONFIG"])
    local = Path("tollgate.yaml")
    return local if local.exists() else None


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> TollgateConfig:
    env = os.environ if env is None else env
    path = path or default_config_path(env)
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist: fix the path or TOLLGATE_CONFIG")
        try:
            loaded = yaml.safe_load(interpolate(path.read_text(), env))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"{path} must hold a mapping of sections, not {type(loaded).__name__}"
            )
        raw = loaded or {}
    overrides = _env_overrides(env)
    if overrides:
        source += f" + {ENV_PREFIX}* environment"
    try:
        return TollgateConfig.model_validate(_merge(raw, overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
