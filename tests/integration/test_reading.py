"""Reading every partition to its end (``edml.kafka.reading``), from the start or from a time."""

from __future__ import annotations

import pytest

from edml.core.config import Settings
from edml.kafka.clients import make_consumer, make_producer
from edml.kafka.reading import EndOffsets, read_to_end

pytestmark = pytest.mark.kafka


def test_read_to_end_from_a_time_reads_only_what_came_at_or_after_it(settings: Settings) -> None:
    topic = settings.topics.trips
    producer = make_producer(settings)
    # partition 0: old and new messages; partition 1: old ones only
    for i in range(20):
        producer.produce(topic, key=b"old", value=f"old-{i}".encode(), partition=i % 2, timestamp=1_000 + i)
    for i in range(5):
        producer.produce(topic, key=b"new", value=f"new-{i}".encode(), partition=0, timestamp=5_000 + i)
    assert producer.flush(10) == 0
    assert len(read_to_end(settings, topic)) == 25
    recent = read_to_end(settings, topic, since_ms=5_000)
    assert [m.value for m in recent] == [f"new-{i}".encode() for i in range(5)]
    assert read_to_end(settings, topic, since_ms=9_000) == []


def test_end_offsets_leave_out_partitions_with_nothing_past_their_start(settings: Settings) -> None:
    topic = settings.topics.trips
    producer = make_producer(settings)
    for i in range(3):
        producer.produce(topic, value=f"m{i}".encode(), partition=0)
    assert producer.flush(10) == 0
    consumer = make_consumer(settings)
    try:
        ends = EndOffsets.of(consumer, [(topic, 0), (topic, 1)], timeout=10)
        assert ends.remaining == {(topic, 0): 3}  # partition 1 is empty
        assert EndOffsets.of(consumer, [(topic, 0)], timeout=10, starts={(topic, 0): 3}).done
    finally:
        consumer.close()
