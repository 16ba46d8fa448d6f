"""Topics as code: create every topic edml uses, idempotently."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, NewTopic

from edml.core.config import COMPACTED_TOPICS, SINGLE_PARTITION_TOPICS, Settings
from edml.core.errors import OperatorError
from edml.kafka.clients import make_admin


class BrokerUnreachable(OperatorError):
    """The broker did not answer; the message says which address was tried."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name, partition count and configs."""

    role: str
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics the system uses, with their layout."""
    specs = []
    for role, name in settings.topics.names().items():
        config: dict[str, str] = {}
        if role in COMPACTED_TOPICS:
            # The model topic is desired state: the latest record per model name wins.
            config = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01",
                      "segment.ms": "600000"}
        partitions = 1 if role in SINGLE_PARTITION_TOPICS else settings.partitions
        specs.append(TopicSpec(role, name, partitions, config))
    return specs


def existing_topics(settings: Settings, timeout: float = 10.0) -> set[str]:
    """Names of the topics on the broker; raises BrokerUnreachable when it does not answer."""
    try:
        metadata = make_admin(settings, quiet=True).list_topics(timeout=timeout)
    except KafkaException as e:
        raise broker_unreachable(settings, e.args[0]) from None
    return set(metadata.topics)


def broker_unreachable(settings: Settings, error: KafkaError) -> BrokerUnreachable:
    """The one-line error for a broker that did not answer ``error``, saying how to fix it."""
    return BrokerUnreachable(f"no Kafka broker answered at {settings.bootstrap_servers} ({error.str()}); "
                             "start one with `make kafka-up` or set EDML_BOOTSTRAP_SERVERS")


def create_topics(settings: Settings, timeout: float = 30.0) -> dict[str, str]:
    """Create the missing topics; returns name -> "created" or "exists"."""
    present = existing_topics(settings)
    result = {}
    missing = []
    for spec in topic_specs(settings):
        if spec.name in present:
            result[spec.name] = "exists"
        else:
            missing.append(NewTopic(spec.name, num_partitions=spec.partitions,
                                    replication_factor=1, config=spec.config))
    if missing:
        admin = make_admin(settings)  # kept referenced: the futures die with their client
        futures = admin.create_topics(missing, operation_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                result[name] = "created"
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                result[name] = "exists"
        _wait_visible(settings, {t.topic for t in missing}, timeout)
    return result


def _wait_visible(settings: Settings, names: set[str], timeout: float) -> None:
    # The broker publishes new topics to its metadata cache a moment after the controller
    # commits them; callers expect to use them right away.
    deadline = time.monotonic() + timeout
    while not names <= existing_topics(settings) and time.monotonic() < deadline:
        time.sleep(0.1)


def topic_config(settings: Settings, topic: str, timeout: float = 10.0) -> dict[str, str]:
    """The topic's configuration as the broker reports it."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = make_admin(settings)
    future = admin.describe_configs([resource])[resource]
    return {name: entry.value for name, entry in future.result(timeout=timeout).items()}
