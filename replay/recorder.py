"""``edml record``: mirror the trips and drop-offs topics into a replay archive.

The recorder is the "decoy" of the rendezvous architecture: it reads the same topics the
scorers read, with its own consumer that assigns every partition (no consumer group, so it
never takes partitions from anyone), and keeps an exact copy: key, value bytes, partition,
offset and Kafka timestamp of every message.

Resuming needs no Kafka offsets: the archive's index knows the last archived offset of every
partition, and the recorder continues after it. Messages of a segment that was still being
written when a recorder died are read again from Kafka into a new segment.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition
from edml.replay.archive import (
    DEFAULT_SEGMENT_AGE_S,
    DEFAULT_SEGMENT_BYTES,
    DROPOFFS,
    TRIPS,
    ArchiveError,
    ArchiveWriter,
    check_role,
)
from edml.schemas.serde import dropoff_serde, trip_serde

from edml.core.config import Settings, Topics
from edml.core.errors import OperatorError
from edml.kafka.clients import make_consumer
from edml.kafka.messages import SourceMessage
from edml.kafka.reading import EndOffsets

log = logging.getLogger("edml.replay.recorder")
DEFAULT_ROLES = (TRIPS, DROPOFFS)
_TOPIC_ROLES = set(Topics().names())
_POLL_S = 0.2
_BATCH = 2000


@dataclass
class RecordStats:
    """What a recording run archived."""

    messages: dict[str, int] = field(default_factory=dict)  # role -> new messages archived
    segments: int = 0  # segments in the archive's index at the end
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """New messages archived, every role."""
        return sum(self.messages.values())


def _topics_for(settings: Settings, roles: Sequence[str]) -> dict[str, str]:
    out = {}
    for role in roles:
        if role not in _TOPIC_ROLES:
            raise OperatorError(f"unknown topic role {role!r}: one of {', '.join(sorted(_TOPIC_ROLES))}")
        out[getattr(settings.topics, role)] = check_role(role)
    return out


def record_topics(
    settings: Settings,
    archive_dir: Path | str,
    roles: Sequence[str] = DEFAULT_ROLES,
    *,
    start: str = "earliest",
    stop_at_end: bool = False,
    duration_s: float | None = None,
    max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    max_segment_age_s: float = DEFAULT_SEGMENT_AGE_S,
    stop: threading.Event | None = None,
    on_progress: Callable[[RecordStats], None] | None = None,
) -> RecordStats:
    """Append every message of the ``roles``' topics to the archive at ``archive_dir``.

    A new partition starts at its ``start`` ("earliest" or "latest"); a partition the archive
    already holds continues after its last archived offset. Runs until ``stop`` is set, for
    ``duration_s``, or (``stop_at_end``) until every partition reached its end as of the start.
    """
    from edml.kafka.topics import existing_topics

    if start not in ("earliest", "latest"):
        raise OperatorError(f"--from must be earliest or latest, not {start!r}")
    topic_roles = _topics_for(settings, roles)
    missing = set(topic_roles) - existing_topics(settings)
    if missing:
        raise OperatorError(f"topics {sorted(missing)} do not exist on {settings.bootstrap_servers}: "
                            "run `edml topics create` or check the topic names")
    writer = ArchiveWriter(archive_dir, max_segment_bytes=max_segment_bytes, max_segment_age_s=max_segment_age_s)
    resume = writer.next_offsets()
    consumer = make_consumer(settings, group_id="edml-recorder", **{"enable.partition.eof": False})
    stats = RecordStats(messages={role: 0 for role in topic_roles.values()})
    started = time.monotonic()
    try:
        assignment, firsts = [], {}
        metadata = consumer.list_topics(timeout=30)
        for topic, role in topic_roles.items():
            for p in sorted(metadata.topics[topic].partitions):
                offset = resume.get((role, p), OFFSET_BEGINNING if start == "earliest" else OFFSET_END)
                assignment.append(TopicPartition(topic, p, offset))
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                firsts[(topic, p)] = offset if offset >= 0 else (low if start == "earliest" else high)
                if (role, p) in resume and low > offset:
                    log.warning("%s partition %d: offsets %d..%d are gone from Kafka (retention): the archive "
                                "has a gap there", topic, p, offset, low - 1)
        ends = EndOffsets.of(consumer, firsts, 30, starts=firsts)
        consumer.assign(assignment)
        log.info("recording %s into %s", ", ".join(f"{r} ({t})" for t, r in topic_roles.items()), writer.root)
        last_report = 0.0
        while True:
            if stop is not None and stop.is_set():
                break
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            if stop_at_end and ends.done:
                break
            by_topic: dict[str, list[SourceMessage]] = {}
            for msg in consumer.consume(_BATCH, _POLL_S):
                ends.passed(msg)
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("%s: %s", msg.topic(), err)
                    continue
                # a consumed message without an error always has its topic, partition and offset
                topic, partition, offset = cast(str, msg.topic()), cast(int, msg.partition()), cast(int, msg.offset())
                by_topic.setdefault(topic, []).append(
                    SourceMessage(topic, partition, offset, msg.key(), msg.value(), msg.timestamp()[1]))
            for topic, messages in by_topic.items():
                role = topic_roles[topic]
                stats.messages[role] += writer.append(role, messages)
            writer.roll_due()
            if on_progress is not None and time.monotonic() - last_report >= 0.5:
                last_report = time.monotonic()
                on_progress(stats)
    finally:
        consumer.close()
        stats.segments = len(writer.close())
        stats.seconds = time.monotonic() - started
    if on_progress is not None:
        on_progress(stats)
    return stats


def write_generated(archive_dir: Path | str, n: int, seed: int, *, partitions: int = 2,
                    start_ms: int | None = None, span_days: float = 7.0, topics: Topics | None = None) -> RecordStats:
    """An archive of ``n`` generated trips (pick-ups and drop-offs), as if recorded, without Kafka.

    Keys are trip ids; a trip's pick-up and drop-off go to partition ``crc32(trip id) % partitions``;
    pick-ups are stamped with their pick-up time and drop-offs with their drop-off time, each
    partition in time order. The default window starts where the generator's default training
    window (28 days) ends: traffic the trained models have not seen.
    """
    from edml.trainer.generator import DAY_MS, DEFAULT_START_MS, generate_trips

    if n < 1 or partitions < 1:
        raise OperatorError("--generate needs a positive trip count and partition count")
    archive_dir = Path(archive_dir)
    if archive_dir.exists() and any(archive_dir.iterdir()):
        raise ArchiveError(f"{archive_dir} is not empty: a generated archive needs a new folder")
    topics = topics or Topics()
    start_ms = DEFAULT_START_MS + 28 * DAY_MS if start_ms is None else start_ms
    started = time.monotonic()
    trips = generate_trips(n, seed, start_ms=start_ms, span_days=span_days)
    trip_serde_, dropoff_serde_ = trip_serde(), dropoff_serde()
    pickups: list[list[SourceMessage]] = [[] for _ in range(partitions)]
    dropoffs: list[list[tuple[int, bytes, bytes]]] = [[] for _ in range(partitions)]
    for trip in trips:
        key = trip.pickup.trip_id.encode()
        p = zlib.crc32(key) % partitions
        pickups[p].append(SourceMessage(topics.trips, p, len(pickups[p]), key, trip_serde_.encode(trip.pickup),
                                        trip.pickup.pickup_time))
        dropoffs[p].append((trip.dropoff.dropoff_time, key, dropoff_serde_.encode(trip.dropoff)))
    stats = RecordStats(messages={TRIPS: n, DROPOFFS: n})
    with ArchiveWriter(archive_dir) as writer:
        for p in range(partitions):
            writer.append(TRIPS, pickups[p])
            ordered = sorted(dropoffs[p], key=lambda d: (d[0], d[1]))
            writer.append(DROPOFFS, [SourceMessage(topics.labels, p, i, key, value, ts)
                                     for i, (ts, key, value) in enumerate(ordered)])
    stats.segments = len(writer.segments)
    stats.seconds = time.monotonic() - started
    return stats
