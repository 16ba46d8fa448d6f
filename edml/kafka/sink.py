"""A Bytewax sink that produces lists of already-encoded messages to their topics."""

from __future__ import annotations

from dataclasses import dataclass

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from edml.config import Settings
from edml.kafka.clients import make_producer


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to produce: topic, key and encoded value."""

    topic: str
    key: bytes | None
    value: bytes | None


class _ProducerPartition(StatelessSinkPartition[list[OutgoingMessage]]):
    def __init__(self, settings: Settings, producer_overrides: dict) -> None:
        self._producer = make_producer(settings, **producer_overrides)

    def write_batch(self, items: list[list[OutgoingMessage]]) -> None:
        produce = self._producer.produce
        for messages in items:
            for m in messages:
                try:
                    produce(m.topic, m.value, m.key)
                except BufferError:  # local queue full: let deliveries drain, then retry
                    self._producer.poll(0.5)
                    produce(m.topic, m.value, m.key)
            self._producer.poll(0)
        # Delivered before Bytewax may snapshot past these events: output is at-least-once.
        self._producer.flush()

    def close(self) -> None:
        self._producer.flush()


class KafkaMessageSink(DynamicSink[list[OutgoingMessage]]):
    """One idempotent producer per worker; each item is a list of messages."""

    def __init__(self, settings: Settings, **producer_overrides: object) -> None:
        self.settings = settings
        self.producer_overrides = {"linger.ms": 2, "batch.num.messages": 10000,
                                   "queue.buffering.max.messages": 500000, **producer_overrides}

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ProducerPartition:
        """A producer for this worker."""
        return _ProducerPartition(self.settings, self.producer_overrides)
