"""``edml record``: mirror a pipeline's input and label topics into a replay archive.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition
from edml.replay.archive import (
    DEFAULT_SEGMENT_AGE_S,
    DEFAULT_SEGMENT_BYTES,
    EVENTS,
    LABELS,
    ArchiveError,
    ArchiveWriter,
    check_role,
)

from edml.core.config import Settings, Topics
from edml.core.errors import OperatorError
from edml.kafka.clients import make_consumer
from edml.kafka.messages import SourceMessage
from edml.kafka.reading import EndOffsets

log = logging.getLogger("edml.replay.recorder")
DEFAULT_ROLES = (EVENTS, LABELS)
# archive role -> the settings' topic role it is recorded from: events are the pipeline's input
# topic (``topics.trips``); any other of the pipeline's topics is recorded under its own role
_TOPIC_OF_ROLE = {EVENTS: "trips", LABELS: "labels"}
_ARCHIVE_ROLE = {topic_role: role for role, topic_role in _TOPIC_OF_ROLE.items()}
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
    """Topic name -> archive role, for the settings' (the pipeline's) topics.

    A role is an archive role (events, labels) or a topic role of the settings; ``trips``, the
    settings' name of the input topic, is recorded as events.
    """
    out = {}
    known = set(_TOPIC_OF_ROLE) | (_TOPIC_ROLES - set(_TOPIC_OF_ROLE.values()))
    for role in roles:
        role = _ARCHIVE_ROLE.get(role, role)
        if role not in known:
            raise OperatorError(f"unknown topic role {role!r}: one of {', '.join(sorted(known))}")
        out[getattr(settings.topics, _TOPIC_OF_ROLE.get(role, role))] = check_role(role)
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

    ``settings`` are a pipeline's (``pipeline_settings``): ``events`` is its input topic, ``labels``
    its label topic.

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
    # a topic the archive already holds under another role name (an older archive) continues as that role
    topic_roles = {topic: writer.role_of_topic(topic) or role for topic, role in topic_roles.items()}
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


def write_archive(archive_dir: Path | str, messages: Mapping[str, Sequence[Sequence[SourceMessage]]]) -> RecordStats:
    """A new archive of ``messages`` (role -> the messages of each partition, in offset order), without Kafka.

    For archives made rather than recorded (generated traffic, fixtures); the folder must be new or empty.
    """
    archive_dir = Path(archive_dir)
    if archive_dir.exists() and any(archive_dir.iterdir()):
        raise ArchiveError(f"{archive_dir} is not empty: a generated archive needs a new folder")
    started = time.monotonic()
    stats = RecordStats(messages={role: 0 for role in messages})
    with ArchiveWriter(archive_dir) as writer:
        for role, partitions in messages.items():
            for batch in partitions:
                if batch:
                    stats.messages[role] += writer.append(role, batch)
    stats.segments = len(writer.segments)
    stats.seconds = time.monotonic() - started
    return stats
