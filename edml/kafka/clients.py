"""Client configs for every Kafka client edml creates.

Every producer, consumer and admin client is built here so that the settings in
``Settings.kafka`` (security protocol, SASL mechanism, CA file, ...) reach all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from edml.core.config import Settings


def base_config(settings: Settings) -> dict[str, Any]:
    """The settings every client shares: bootstrap servers, ``[kafka]`` properties, and with
    ``google_kafka_auth`` the OAUTHBEARER token callback for Google Managed Kafka."""
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers, **settings.kafka}
    if settings.google_kafka_auth:
        from edml.kafka.google_auth import oauth_callback

        config.setdefault("security.protocol", "SASL_SSL")
        config.setdefault("sasl.mechanism", "OAUTHBEARER")
        config["oauth_cb"] = oauth_callback()
    return config


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer's config; ``overrides`` use librdkafka names with ``_`` for ``.``."""
    config = {
        **base_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    config.update({k.replace("_", "."): v for k, v in overrides.items()})
    return config


def consumer_config(settings: Settings, group_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A consumer's config; without ``group_id`` it only reads assigned partitions."""
    config = {
        **base_config(settings),
        "group.id": group_id or "edml-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }
    config.update({k.replace("_", "."): v for k, v in overrides.items()})
    return config


class _SelfHealingRetries(logging.Filter):
    """Drops librdkafka's notices of retries it makes by itself and that always end well.

    A new broker loads its coordinators for a few seconds; the first idempotent producer's PID
    request meets ``Coordinator load in progress`` and librdkafka retries. Every other line
    (a broker down, an authentication failure) still reaches the log.
    """

    SELF_HEALING = ("Coordinator load in progress: retrying",)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.SELF_HEALING)


# librdkafka's own log, through Python logging (served by the client's poll and flush)
LIBRDKAFKA_LOG = logging.getLogger("edml.kafka.librdkafka")
LIBRDKAFKA_LOG.addFilter(_SelfHealingRetries())


def make_producer(settings: Settings, on_delivery: Callable[..., None] | None = None, **overrides: Any) -> Producer:
    """A producer with ``producer_config``; ``on_delivery`` becomes its default delivery callback."""
    config = producer_config(settings, **overrides)
    config.setdefault("logger", LIBRDKAFKA_LOG)
    if on_delivery is not None:
        config["on_delivery"] = on_delivery
    return Producer(config)


def make_consumer(settings: Settings, group_id: str | None = None, quiet: bool = False, **overrides: Any) -> Consumer:
    """A consumer with ``consumer_config``; ``quiet`` silences librdkafka's connection log."""
    config = consumer_config(settings, group_id, **overrides)
    if quiet:  # its caller reports an unreachable broker itself, in one line
        config["log_level"] = 0
    return Consumer(config)


def make_admin(settings: Settings, quiet: bool = False) -> AdminClient:
    """An admin client with ``base_config``; ``quiet`` silences librdkafka's connection log."""
    config = base_config(settings)
    if quiet:
        # a probe reports an unreachable broker itself, in one line
        config["log_level"] = 0
    return AdminClient(config)
