"""Settings: one config file, overridden by ``EDML_*`` environment variables, then by flags.

Resolution order (later wins): built-in defaults -> ``edml.toml`` (or the file named by
``EDML_CONFIG``) -> environment variables -> command-line flags (``Settings.with_overrides``).

``edml.toml``::

    bootstrap_servers = "127.0.0.1:9092"
    state_dir = ".edml"
    artifact_store = "file://.edml/artifacts"
    partitions = 4
    metrics_host = "0.0.0.0"   # the address /metrics and /healthz bind: every interface by default
    [topics]
    trips = "trips"
    [kafka]                # passed to every Kafka client as is (security settings go here)
    "security.protocol" = "SASL_SSL"
    [schema_registry]      # set url to write the Confluent wire format (see SchemaRegistrySettings)
    url = "https://registry.example:8081"

Environment: ``EDML_BOOTSTRAP_SERVERS``, ``EDML_STATE_DIR``, ``EDML_ARTIFACT_STORE``,
``EDML_PARTITIONS``, ``EDML_METRICS_HOST``, ``EDML_TOPIC_<NAME>`` (e.g. ``EDML_TOPIC_TRIPS``), ``EDML_TOPIC_PREFIX``,
``EDML_SCHEMA_REGISTRY_<KEY>`` for each key of ``[schema_registry]`` (``EDML_SCHEMA_REGISTRY_URL``,
``EDML_SCHEMA_REGISTRY_BEARER_TOKEN``, ...), ``EDML_MODEL_PUBLIC_KEY``, ``EDML_ON_TOPIC_CHANGE`` (earliest | exit),
``EDML_GOOGLE_KAFKA_AUTH`` (1: SASL/OAUTHBEARER
with Google credentials, for Managed Kafka), and ``EDML_KAFKA_<PROPERTY>`` for
client properties (``EDML_KAFKA_SECURITY_PROTOCOL`` -> ``security.protocol``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edml.core.errors import OperatorError


class ConfigError(OperatorError):
    """An operator mistake in configuration; its message says how to fix it."""


@dataclass(frozen=True)
class Topics:
    """Names of every topic edml uses."""

    trips: str = "trips"
    labels: str = "dropoffs"  # the default pipeline's label topic
    predictions: str = "predictions"
    shadow_predictions: str = "shadow-predictions"
    models: str = "models"
    model_status: str = "model-status"
    dead_letter: str = "dead-letter"
    evaluations: str = "evaluations"
    scores: str = "scores"
    alerts: str = "alerts"
    prediction_alerts: str = "prediction-alerts"  # predictions an alert rule fired on
    autopilot: str = "autopilot"  # what the continuous-training controller did (edml autopilot)
    prefix: str = ""  # in front of every name, and of the topics a pipeline derives (not a role)

    def with_prefix(self, prefix: str) -> Topics:
        """The same topics with ``prefix`` in front of every name."""
        return Topics(**{role: prefix + name for role, name in self.names().items()}, prefix=prefix + self.prefix)

    def names(self) -> dict[str, str]:
        """Role -> topic name."""
        names = dataclasses.asdict(self)
        del names["prefix"]
        return names


@dataclass(frozen=True)
class SchemaRegistrySettings:
    """How to reach a Confluent-compatible schema registry; no ``url``: no registry.

    Authentication is one of: ``basic_auth_user_info`` (``KEY:SECRET``, e.g. a Confluent Cloud API
    key), ``bearer_token`` (a static token; ``bearer_logical_cluster`` and
    ``bearer_identity_pool`` are sent beside it when the registry wants them), or
    ``google_auth`` (a fresh OAuth2 access token from Google Application Default Credentials
    on every request, for Google Cloud's managed registry). Secrets never appear in ``repr``.
    """

    url: str = ""
    basic_auth_user_info: str = ""
    bearer_token: str = ""
    bearer_logical_cluster: str = ""
    bearer_identity_pool: str = ""
    google_auth: bool = False
    ssl_ca_location: str = ""
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        auth = ("basic" if self.basic_auth_user_info else "bearer" if self.bearer_token
                else "google" if self.google_auth else "none")
        return f"SchemaRegistrySettings(url={redact_url(self.url)!r}, auth={auth})"


def redact_url(url: str) -> str:
    """``url`` without the credentials a ``scheme://user:secret@host`` URL carries."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


_REGISTRY_KEYS: dict[str, Any] = {"url": str, "basic_auth_user_info": str, "bearer_token": str,
                                  "bearer_logical_cluster": str, "bearer_identity_pool": str,
                                  "google_auth": None, "ssl_ca_location": str, "timeout_s": float}


COMPACTED_TOPICS = ("models",)
# The model topic is tiny and read whole by every worker: one partition keeps order simple; the
# autopilot's history is read back in the order it happened.
SINGLE_PARTITION_TOPICS = ("models", "model_status", "autopilot")


@dataclass(frozen=True)
class Settings:
    """Everything a job needs to reach Kafka, the artifact store and its state."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topics: Topics = field(default_factory=Topics)
    partitions: int = 4
    state_dir: Path = Path(".edml")
    artifact_store: str = ""
    model_name: str = "trip-duration"
    pipeline: str = "taxi"  # the pipeline a job runs (edml.pipelines.bound.pipeline_settings)
    schema_registry: SchemaRegistrySettings = field(default_factory=SchemaRegistrySettings)
    model_public_key: str = ""
    # a serving model is quarantined when more than this share of its last window of rows failed
    model_failure_rate: float = 0.05
    model_failure_window: int = 1000
    google_kafka_auth: bool = False
    # every interface, for Prometheus in another pod; 127.0.0.1 keeps /metrics on the host
    metrics_host: str = "0.0.0.0"
    kafka: dict[str, str] = field(default_factory=dict)
    # What a source does when its topic changed under its recovery state (re-created, offsets out
    # of range, partitions gone): "earliest" logs, counts and reads from the earliest offset;
    # "exit" stops with exit code 2 and one line naming the topic.
    on_topic_change: str = "earliest"

    @property
    def schema_registry_url(self) -> str:
        """The schema registry's URL; empty: no registry (single-object encoding)."""
        return self.schema_registry.url

    @property
    def artifact_store_uri(self) -> str:
        """The artifact store, defaulting to a folder under the state dir."""
        return self.artifact_store or f"file://{(self.state_dir / 'artifacts').resolve()}"

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with the non-None ``values`` applied (flags win over file and env)."""
        given = {k: v for k, v in values.items() if v is not None}
        if "state_dir" in given:
            given["state_dir"] = Path(given["state_dir"])
        return dataclasses.replace(self, **given)


TOPIC_CHANGE_POLICIES = ("earliest", "exit")


def topic_change_policy(raw: object) -> str:
    """One of TOPIC_CHANGE_POLICIES."""
    text = str(raw).strip().lower()
    if text not in TOPIC_CHANGE_POLICIES:
        raise ValueError(text)
    return text


def boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


def _env_kafka_properties(env: dict[str, str]) -> dict[str, str]:
    props = {}
    for key, value in env.items():
        if key.startswith("EDML_KAFKA_"):
            props[key.removeprefix("EDML_KAFKA_").lower().replace("_", ".")] = value
    return props


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings from the config file and the environment (see the module docstring)."""
    env = dict(os.environ if env is None else env)
    path = Path(path or env.get("EDML_CONFIG", "edml.toml"))
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e}); fix the file or unset EDML_CONFIG") from None
    elif "EDML_CONFIG" in env:
        raise ConfigError(f"EDML_CONFIG names {path}, which does not exist")

    topic_fields = set(Topics().names())
    topic_values = dict(data.pop("topics", {}))
    unknown = set(topic_values) - topic_fields
    if unknown:
        raise ConfigError(f"{path}: unknown topic role(s) {sorted(unknown)}; known: {sorted(topic_fields)}")
    for role in topic_fields:
        env_name = f"EDML_TOPIC_{role.upper()}"
        if env_name in env:
            topic_values[role] = env[env_name]
    topics = Topics(**topic_values)
    prefix = env.get("EDML_TOPIC_PREFIX", data.pop("topic_prefix", ""))
    if prefix:
        topics = topics.with_prefix(prefix)

    data.pop("pipelines", None)  # [pipelines.NAME] declarations: read by edml.pipelines
    kafka = {str(k): str(v) for k, v in data.pop("kafka", {}).items()}
    kafka.update(_env_kafka_properties(env))

    simple: dict[str, Callable[[Any], Any]] = {
        "bootstrap_servers": str,
        "state_dir": Path,
        "artifact_store": str,
        "partitions": int,
        "model_name": str,
        "model_public_key": str,
        "model_failure_rate": float,
        "model_failure_window": int,
        "google_kafka_auth": boolean,
        "metrics_host": str,
        "on_topic_change": topic_change_policy,
    }
    values: dict[str, Any] = {}
    for name, cast in simple.items():
        raw = env.get(f"EDML_{name.upper()}", data.pop(name, None))
        if raw is None:
            continue
        try:
            values[name] = cast(raw)
        except ValueError:
            kind = getattr(cast, "__name__", "value")
            raise ConfigError(f"{name}={raw!r} is not a valid {kind}") from None
    values["schema_registry"] = _schema_registry_settings(path, data, env)
    if data:
        raise ConfigError(f"{path}: unknown setting(s) {sorted(data)}")
    return Settings(topics=topics, kafka=kafka, **values)


def _schema_registry_settings(path: Path, data: dict[str, Any], env: dict[str, str]) -> SchemaRegistrySettings:
    """The ``[schema_registry]`` table (or a top-level ``schema_registry_url``), then ``EDML_SCHEMA_REGISTRY_*``."""
    table = dict(data.pop("schema_registry", {}))
    if "schema_registry_url" in data:
        table.setdefault("url", data.pop("schema_registry_url"))
    unknown = set(table) - set(_REGISTRY_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown [schema_registry] key(s) {sorted(unknown)}; "
                          f"known: {sorted(_REGISTRY_KEYS)}")
    for key in _REGISTRY_KEYS:
        if f"EDML_SCHEMA_REGISTRY_{key.upper()}" in env:
            table[key] = env[f"EDML_SCHEMA_REGISTRY_{key.upper()}"]
    values: dict[str, Any] = {}
    for key, raw in table.items():
        cast = _REGISTRY_KEYS[key] or boolean
        try:
            values[key] = cast(raw)
        except ValueError:
            # the value may be a secret: name the key only
            raise ConfigError(f"[schema_registry] {key} has an invalid value; see README: schema registry") from None
    registry = SchemaRegistrySettings(**values)
    if registry.url and not registry.url.startswith(("http://", "https://")):
        raise ConfigError(f"[schema_registry] url {redact_url(registry.url)!r} is not an http(s):// URL")
    auths = sum(map(bool, (registry.basic_auth_user_info, registry.bearer_token, registry.google_auth)))
    if auths > 1:
        raise ConfigError("[schema_registry]: set one of basic_auth_user_info, bearer_token, google_auth")
    return registry
