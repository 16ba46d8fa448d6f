"""Kafka security settings: checked once at start, shown without their secrets.

Every Kafka client edml creates is configured by :mod:`edml.kafka.clients`, which adds the
``[kafka]`` table of ``edml.toml`` and the ``EDML_KAFKA_*`` environment variables to each
config as is (librdkafka property names), e.g. for a SASL_SSL cluster::

    [kafka]
    "security.protocol" = "SASL_SSL"
    "sasl.mechanism" = "SCRAM-SHA-512"
    "sasl.username" = "edml-scorer"
    "ssl.ca.location" = "/etc/edml/ca.pem"
    # the password from the environment: EDML_KAFKA_SASL_PASSWORD

librdkafka checks the names and values (and reads the CA file) when a client is built;
:func:`check_client_settings` builds one at start so that a mistake there stops the command
with one line, before any thread or dataflow runs.
"""

from __future__ import annotations

from typing import Any

from edml.core.config import ConfigError, Settings
from edml.kafka.clients import make_admin

# Properties whose values must never reach a log line or an error message
_SECRET_MARKERS = ("password", "secret", "jaas", "key.pem", "keystore", "token", "credentials")


def redacted(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every secret-looking value replaced by ``***``."""
    return {k: "***" if any(m in k.lower() for m in _SECRET_MARKERS) else v for k, v in config.items()}


def describe(settings: Settings) -> str:
    """One line saying how clients reach Kafka: protocol, mechanism, user, CA file; other names, no values."""
    props = dict(settings.kafka)
    if settings.google_kafka_auth:  # the defaults clients.base_config adds for Google Managed Kafka
        props = {"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER", **props}
    shown = ("security.protocol", "sasl.mechanism", "sasl.username", "ssl.ca.location")
    parts = [f"security.protocol={props.get('security.protocol', 'PLAINTEXT')}"]
    parts += [f"{name}={props[name]}" for name in shown[1:] if name in props]
    others = sorted(k for k in props if k not in shown)
    if others:
        parts.append(f"(also set: {', '.join(others)})")
    if settings.google_kafka_auth:
        parts.append("with the OAUTHBEARER token from Google credentials")
    return " ".join(parts)


def check_client_settings(settings: Settings) -> None:
    """Raise ConfigError (one line) when librdkafka refuses the client settings.

    Unknown property names, bad values and an unreadable CA file fail here, at start.
    """
    from confluent_kafka import KafkaException

    try:
        make_admin(settings, quiet=True)
    except KafkaException as e:
        error = e.args[0]
        reason = error.str() if hasattr(error, "str") else str(error)
        raise ConfigError(f"Kafka client settings ([kafka] in the config file or EDML_KAFKA_*) are refused: "
                          f"{reason}") from None
