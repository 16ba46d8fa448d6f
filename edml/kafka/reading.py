"""Read a topic from the beginning up to its current end (high watermarks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from edml.core.config import Settings
from edml.kafka.clients import make_consumer
from edml.kafka.messages import SourceMessage as Message

# a topic created a moment ago may not have a leader yet; these clear up within seconds
_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
}
T = TypeVar("T")
Headers = list[tuple[str, bytes]]


def read_to_end(settings: Settings, topic: str, timeout: float = 30.0, attempts: int = 10,
                since_ms: int | None = None) -> list[Message]:
    """Every message of ``topic``, from its first offset to the high watermark at call time.

    With ``since_ms``, only from each partition's first message timestamped at or after it.
    Retried while a new topic's partitions get their leaders.
    """
    return _retried(settings, topic, timeout, attempts, since_ms, _message)


def read_with_headers(settings: Settings, topic: str, timeout: float = 30.0, attempts: int = 10,
                      since_ms: int | None = None) -> list[tuple[Message, Headers]]:
    """Like :func:`read_to_end`, each message with its Kafka headers (empty when it has none)."""
    return _retried(settings, topic, timeout, attempts, since_ms, lambda m: (_message(m), m.headers() or []))


def _message(msg: Any) -> Message:  # noqa: ANN401 - a confluent_kafka.Message
    return Message(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.timestamp()[1])


def _retried(settings: Settings, topic: str, timeout: float, attempts: int, since_ms: int | None,
             convert: Callable[[Any], T]) -> list[T]:
    for attempt in range(attempts):
        try:
            return _read_to_end(settings, topic, timeout, since_ms, convert)
        except KafkaException as e:
            error = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
            if error is None or error.code() not in _TRANSIENT or attempt == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _read_to_end(settings: Settings, topic: str, timeout: float, since_ms: int | None,
                 convert: Callable[[Any], T]) -> list[T]:
    consumer = make_consumer(settings)
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
        starts, ends = {}, {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                starts[p], ends[p] = low, high
        if since_ms is not None and starts:
            found = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in starts], timeout=timeout)
            for tp in found:
                if tp.offset < 0:  # nothing that recent in this partition
                    ends.pop(tp.partition)
                else:
                    starts[tp.partition] = tp.offset
        if not ends:
            return []
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in ends])
        out: list[T] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    ends.pop(msg.partition(), None)
                continue
            out.append(convert(msg))
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        return out
    finally:
        consumer.close()


def wait_for_count(settings: Settings, topic: str, count: int, timeout: float = 60.0) -> list[Message]:
    """Read ``topic`` until it holds at least ``count`` messages or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    messages = read_to_end(settings, topic)
    while len(messages) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        messages = read_to_end(settings, topic)
    return messages
