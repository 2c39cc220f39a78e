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

from schemas.guards_config import GuardSettings
from schemas.limits_config import (
    AdmissionSettings,
    AlertSettings,
    BudgetSettings,
    RateLimitSettings,
)
from schemas.pricing import Price
from schemas.routing_config import (
    DeploymentSettings,
    ProviderSettings,
    ResilienceSettings,
    RoutingSettings,
)

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
    verify: bool = Field(True, description="check the server's TLS certificate (https URLs)")
    ca_cert: Path | None = Field(None, description="CA bundle for the server's certificate")
    body_ttl_days: int = Field(30, ge=0, description="prompt/completion bodies; 0 = not stored")


class SinkSettings(_Strict):
    group_id: str = "tollgate-sink"
    batch_max_rows: int = Field(5000, ge=1)
    batch_max_ms: int = Field(500, ge=10)
    query_host: str = "127.0.0.1"
    query_port: int = Field(8124, ge=1, le=65535)


class IngressSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    event_queue_max: int = Field(200_000, ge=100)
    workers: int = Field(1, ge=1, le=64, description="processes sharing the port (SO_REUSEPORT)")
    spool_dir: Path | None = Field(None, description="events wait here while Kafka is away")
    spool_max_bytes: int = Field(1024**3, ge=1024 * 1024)


class FakeUpstreamSettings(_Strict):
    """The stand-in provider `tollgate up` starts on loopback (the demo and tests use it)."""

    host: str = "127.0.0.1"
    port: int = Field(9100, ge=1, le=65535)
    api_key: SecretStr | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class AdminSettings(_Strict):
    """The credential for the key-management API; unset = the admin API answers 403."""

    api_key: SecretStr | None = None
    api_key_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @property
    def digest(self) -> str | None:
        if self.api_key_sha256 is not None:
            return self.api_key_sha256
        return hash_key(self.api_key.get_secret_value()) if self.api_key else None


class ProcessorSettings(_Strict):
    app_id: str = "tollgate-processors"
    store: str = Field("rocksdb://", description="faust table store: rocksdb:// or memory://")
    web_port: int = Field(6066, ge=1, le=65535)
    session_timeout_s: float = Field(
        10.0,
        ge=6,
        le=300,
        description="how long a dead worker holds its partitions (and freezes its budgets) "
        "before the group moves them to a live one",
    )
    fetch_max_wait_ms: int = Field(
        20,
        ge=1,
        le=1500,
        description="how long a fetch of idle partitions may wait on the broker; a busy "
        "partition's next fetch waits behind it (one fetch in flight per broker)",
    )
    cpu_nice: int = Field(
        -5,
        ge=-20,
        le=0,
        description="the metering worker's CPU priority above the rest (0 = equal): on "
        "shared cores every admission waits on it; raising needs root or CAP_SYS_NICE, "
        "without which it stays equal",
    )


class KeySettings(_Strict):
    """A static gateway key. Give the hash (preferred) or the key itself; only hashes are kept."""

    key: SecretStr | None = None
    key_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    tenant: str = Field(min_length=1)
    team: str | None = None
    user: str | None = None
    org: str | None = None
    models: tuple[str, ...] = Field((), description="models this key may use; empty = all")
    replay: bool = Field(
        False,
        description="may tag calls with x-tollgate-experiment/-variant (`tollgate replay`)",
    )

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
    """Per 1M tokens; a `deployment` (`provider/upstream_model`, as in
    `x-tollgate-deployment`) makes the price apply only to calls that deployment served."""

    model: str
    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(None, ge=0)
    audio_input: Decimal | None = Field(None, ge=0)
    audio_output: Decimal | None = Field(None, ge=0)
    image_input: Decimal | None = Field(None, ge=0)
    currency: str = "USD"
    effective_from: date = date(1970, 1, 1)
    deployment: str | None = Field(None, min_length=1)

    def to_price(self) -> Price:
        return Price(**self.model_dump())


class TollgateConfig(_Strict):
    home: Path = DEFAULT_HOME
    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    sink: SinkSettings = SinkSettings()
    ingress: IngressSettings = IngressSettings()
    fake_upstream: FakeUpstreamSettings = FakeUpstreamSettings()
    processors: ProcessorSettings = ProcessorSettings()
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    deployments: tuple[DeploymentSettings, ...] = ()
    routing: RoutingSettings = RoutingSettings()
    resilience: ResilienceSettings = ResilienceSettings()
    admin: AdminSettings = AdminSettings()
    keys: tuple[KeySettings, ...] = ()
    pricing: tuple[PriceSettings, ...] = ()
    budgets: tuple[BudgetSettings, ...] = ()
    rate_limits: tuple[RateLimitSettings, ...] = ()
    admission: AdmissionSettings = AdmissionSettings()
    alerts: AlertSettings = AlertSettings()
    guards: GuardSettings = Field(default_factory=GuardSettings)

    @model_validator(mode="before")
    @classmethod
    def _fake_upstream_by_default(cls, data: Any) -> Any:
        """No providers at all: every model goes to the fake upstream, so `tollgate up` works."""
        if isinstance(data, dict) and not data.get("providers") and not data.get("deployments"):
            fake = FakeUpstreamSettings.model_validate(data.get("fake_upstream") or {})
            key = fake.api_key.get_secret_value() if fake.api_key else None
            data = {
                **data,
                "providers": {
                    "fake": {
                        "kind": "openai_compatible",
                        "base_url": f"{fake.url}/v1",
                        "api_key": key,
                    }
                },
                "deployments": [{"model": "*", "provider": "fake"}],
            }
        return data

    @model_validator(mode="after")
    def _references_resolve(self) -> TollgateConfig:
        check_references(self)
        return self

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

    @property
    def spool_dir(self) -> Path:
        return self.ingress.spool_dir or self.home / "spool"

    def prices(self) -> list[Price]:
        return [p.to_price() for p in self.pricing]


def check_references(config: TollgateConfig) -> None:
    """Names that point elsewhere in the config must exist; the message says where and what."""
    problems: list[str] = []
    ids: set[str] = set()
    for i, dep in enumerate(config.deployments):
        if dep.provider not in config.providers:
            known = ", ".join(sorted(config.providers)) or "none"
            problems.append(
                f"deployments.{i}.provider: unknown provider `{dep.provider}` (known: {known})"
            )
        if dep.id in ids:
            problems.append(f"deployments.{i}.name: `{dep.id}` is used twice; give each a `name`")
        ids.add(dep.id)
    models = {d.model for d in config.deployments}

    def served(model: str) -> bool:
        return model in models or "*" in models or model in config.routing.aliases

    for alias, target in config.routing.aliases.items():
        if not served(target):
            problems.append(f"routing.aliases.{alias}: `{target}` has no deployment")
    for model, chain in config.routing.fallbacks.items():
        problems += [
            f"routing.fallbacks.{model}: `{m}` has no deployment" for m in chain if not served(m)
        ]
    for i, rule in enumerate(config.routing.rules):
        problems += [
            f"routing.rules.{i}.deployments: no deployment is named `{d}`"
            for d in rule.deployments
            if d not in ids
        ]
    for i, split in enumerate(config.routing.experiments):
        for j, variant in enumerate(split.variants):
            where = f"routing.experiments.{i}.variants.{j}"
            if variant.model is not None and not served(variant.model):
                problems.append(f"{where}.model: `{variant.model}` has no deployment")
            problems += [
                f"{where}.deployments: no deployment is named `{d}`"
                for d in variant.deployments
                if d not in ids
            ]
    limits = (
        ("budgets", [b.name for b in config.budgets]),
        ("rate_limits", [r.name for r in config.rate_limits]),
    )
    for section, names in limits:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                problems.append(f"{section}.{i}.name: `{name}` is used twice; names are ids")
            seen.add(name)
    if problems:
        raise ValueError("; ".join(problems))


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


def _line_of(text: str | None, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or its nearest parent that exists)."""
    if not text:
        return None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            match = node.value[part] if part < len(node.value) else None
        else:
            match = None
        if match is None:
            break
        node, line = match, match.start_mark.line + 1
    return line


def _describe(exc: ValidationError, source: str, text: str | None = None) -> str:
    lines = [f"{source} is not a valid Tollgate config:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        hint = " (remove it or check its spelling)" if err["type"] == "extra_forbidden" else ""
        if loc:
            line = _line_of(text, loc)
            at = f" (line {line})" if line else ""
            where = ".".join(str(part) for part in loc)
            lines.append(f"  {where}{at}: {msg}{hint}")
            continue
        for problem in msg.split("; "):  # cross-reference checks name their own paths
            path, _, _ = problem.partition(": ")
            parts = tuple(int(p) if p.isdigit() else p for p in path.split("."))
            line = _line_of(text, parts)
            lines.append(f"  {problem}" + (f" (line {line})" if line else ""))
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
    text: str | None = None
    source = "defaults"
    if path is not None:
        source = str(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist: fix the path or TOLLGATE_CONFIG")
        try:
            text = interpolate(path.read_text(), env)
            loaded = yaml.safe_load(text)
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
        raise ConfigError(_describe(exc, source, text)) from exc
