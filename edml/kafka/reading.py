"""Read a topic from the beginning up to its current end (high watermarks).

``EndOffsets`` is the one "read every partition to its end" of the package: ``read_to_end``, the
model subscriber's bootstrap and the recorder's ``--stop-at-end`` all track their partitions with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from edml.core.config import Settings
from edml.kafka.clients import make_consumer
from edml.kafka.messages import SourceMessage as Message
from edml.kafka.topics import broker_unreachable

# a topic created a moment ago may not have a leader yet; these clear up within seconds
_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
}
T = TypeVar("T")
Headers = list[tuple[str, bytes]]
log = logging.getLogger("edml.kafka")


@dataclass
class EndOffsets:
    """The end (high watermark at the start) of each partition still to be read; done when none is left."""

    remaining: dict[tuple[str, int], int]

    @classmethod
    def of(cls, consumer: Any, partitions: Iterable[tuple[str, int]], timeout: float,
           starts: Mapping[tuple[str, int], int] | None = None) -> EndOffsets:
        """The ends of ``partitions`` (topic, partition) that hold messages at or after their start.

        A partition starts at its low watermark unless ``starts`` gives an offset (a negative one,
        Kafka's logical offsets, counts as the low watermark).
        """
        remaining = {}
        for topic, partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            start = (starts or {}).get((topic, partition), low)
            if high > max(start, low):
                remaining[(topic, partition)] = high
        return cls(remaining)

    @property
    def done(self) -> bool:
        """Every partition was read to its end."""
        return not self.remaining

    def passed(self, msg: Any) -> None:
        """Note a polled message, or a partition-EOF event: its partition may now be at its end."""
        key = (msg.topic(), msg.partition())
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self.remaining.pop(key, None)
        elif msg.offset() + 1 >= self.remaining.get(key, 0):
            self.remaining.pop(key, None)


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
            if error is not None and error.code() == KafkaError._TRANSPORT:
                raise broker_unreachable(settings, error) from None
            if error is None or error.code() not in _TRANSIENT or attempt == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _read_to_end(settings: Settings, topic: str, timeout: float, since_ms: int | None,
                 convert: Callable[[Any], T]) -> list[T]:
    # a reader's failures reach its caller as exceptions (an unreachable broker as one line), so
    # librdkafka's own connection log would only repeat them
    consumer = make_consumer(settings, quiet=True)
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
        starts: dict[tuple[str, int], int] = {}
        if since_ms is not None and partitions:
            found = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in partitions],
                                               timeout=timeout)
            starts = {(topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}
            partitions = [p for p in partitions if (topic, p) in starts]  # the others hold nothing that recent
        ends = EndOffsets.of(consumer, [(topic, p) for p in partitions], timeout, starts)
        if ends.done:
            return []
        consumer.assign([TopicPartition(topic, p, starts.get((topic, p), OFFSET_BEGINNING)) for _, p in ends.remaining])
        out: list[T] = []
        deadline = time.monotonic() + timeout
        while not ends.done and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            ends.passed(msg)
            if not msg.error():
                out.append(convert(msg))
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


def decode_messages(messages: Iterable[Message], decode: Callable[[Any], T],
                    undecodable: type[Exception] | tuple[type[Exception], ...],
                    log_as: str | None = None) -> tuple[list[tuple[Message, T]], int]:
    """Each message with its decoded value, in order, and how many were skipped because ``decode`` raised
    ``undecodable``; with ``log_as`` (what a message should be, e.g. "a ScoreWindow") each skip is logged."""
    decoded: list[tuple[Message, T]] = []
    skipped = 0
    for msg in messages:
        try:
            decoded.append((msg, decode(msg.value)))
        except undecodable as e:
            skipped += 1
            if log_as is not None:
                log.warning("%s %d/%d is not %s: %s; skipped", msg.topic, msg.partition, msg.offset, log_as, e)
    return decoded, skipped


def read_decoded(settings: Settings, topic: str, decode: Callable[[Any], T],
                 undecodable: type[Exception] | tuple[type[Exception], ...], what: str) -> list[T]:
    """Every message of ``topic`` to its end, decoded; one that is not ``what`` is logged and skipped."""
    decoded, _ = decode_messages(read_to_end(settings, topic), decode, undecodable, log_as=what)
    return [value for _, value in decoded]
