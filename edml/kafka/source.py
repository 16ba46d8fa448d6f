"""A Bytewax source over Kafka partitions whose items are whole polled batches.

Each Kafka partition is a Bytewax partition (recovery snapshots its next offset). An item is
the list of messages of one poll, so the operators downstream run once per batch, not per
event. A ``gate`` holds every partition while it returns False: the partition then emits
nothing and keeps its offset, so events wait at the source (none lost, recovery exact).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from edml.core.config import Settings
from edml.core.metrics import EVENTS_IN, HELD_EVENTS
from edml.kafka.clients import consumer_config, make_admin
from edml.kafka.messages import SourceMessage

log = logging.getLogger("edml.source")
Gate = Callable[[], bool]
# Set by a SIGTERM/SIGINT handler: every partition then ends, Bytewax closes the last epoch
# (snapshot + sink flush) and the dataflow returns, instead of an interrupt inside a callback.
STOP = threading.Event()
_HELD_POLL = timedelta(milliseconds=200)
# How long one poll waits for a full batch. A worker polls its partitions one after another, so
# every partition's wait adds to every trip's latency: at 5,000 trips/s over 2 partitions a 50 ms
# wait gave a p99 over 100 ms. Under load a batch fills from librdkafka's prefetched queue at
# once, so a short wait costs no throughput.
_POLL_TIMEOUT_S = 0.005
_HELD_LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class PartitionPosition:
    """A partition's snapshot: the next offset to read, and when the snapshot was taken."""

    offset: int
    at_ms: int


class ResumeListener(Protocol):
    """Told which partitions re-read events after a restart."""

    def resumed(self, topic: str, partition: int, snapshot_ms: int, end_offset: int, snapshotted: bool) -> None:
        """``partition`` re-reads up to ``end_offset`` from a snapshot taken at ``snapshot_ms``.

        ``snapshotted`` is False for a partition without a snapshot, re-read from its beginning:
        ``snapshot_ms`` is then the earliest time an earlier run may have read it.
        """


class _HeldPartition(StatefulSourcePartition[list[SourceMessage], PartitionPosition]):
    def __init__(self, config: dict, topic: str, partition: int, offset: int, batch_size: int,
                 gate: Gate, tail: bool) -> None:
        self._consumer = Consumer(config)
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        self._topic, self._partition, self._offset = topic, partition, offset
        self._batch_size, self._gate, self._tail = batch_size, gate, tail
        self._replay_end: int | None = None
        self._resumed_at_ms = -1
        self._held_since: float | None = None
        self._last_held_log = 0.0
        self._eof = False
        self._wake: datetime | None = None
        self._held_gauge = HELD_EVENTS.labels(topic, str(partition))

    def next_batch(self) -> list[list[SourceMessage]]:
        if self._eof or STOP.is_set():
            raise StopIteration()
        if not self._gate():
            self._hold()
            return []
        if self._held_since is not None:
            log.info("partition %s-%d resumes after %.1fs held", self._topic, self._partition,
                     time.monotonic() - self._held_since)
            self._held_since = None
            self._held_gauge.set(0)
        self._wake = None
        batch = []
        for msg in self._consumer.consume(self._batch_size, _POLL_TIMEOUT_S):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._eof = not self._tail
                else:  # transient (broker restart...): librdkafka reconnects by itself
                    log.warning("partition %s-%d: %s", self._topic, self._partition, err)
                continue
            ts = msg.timestamp()[1]
            batch.append(SourceMessage(self._topic, self._partition, msg.offset(), msg.key(), msg.value(),
                                       ts if ts > 0 else int(time.time() * 1000)))
        if not batch:
            return []
        self._offset = batch[-1].offset + 1
        EVENTS_IN.inc(len(batch))
        if self._replay_end is not None and self._offset >= self._replay_end:
            self._replay_end = None
        return [batch]

    def report_replay(self, listener: ResumeListener, snapshot_ms: int, snapshotted: bool) -> None:
        """Tell ``listener`` when this resumed partition re-reads events: up to its current end."""
        try:
            _, end = self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition),
                                                          timeout=30, cached=False)
        except KafkaException as e:  # scoring goes on; only the repeats' bytes are at stake
            log.warning("partition %s-%d: end offset unknown (%s); trips scored again after this restart get "
                        "new predictions", self._topic, self._partition, e)
            return
        if self._offset >= end:
            return
        self._replay_end, self._resumed_at_ms = end, snapshot_ms
        listener.resumed(self._topic, self._partition, snapshot_ms, end, snapshotted)

    def _hold(self) -> None:
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
        self._wake = datetime.now(UTC) + _HELD_POLL
        if now - self._last_held_log >= _HELD_LOG_EVERY_S:
            self._last_held_log = now
            try:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition),
                                                               timeout=1, cached=False)
            except Exception:  # the count is informative only
                return
            held = max(0, high - self._offset) if self._offset >= 0 else high
            self._held_gauge.set(held)
            where = f"offset {self._offset}" if self._offset >= 0 else "the beginning"
            log.info("partition %s-%d holds %d events at %s: no model is active yet",
                     self._topic, self._partition, held, where)

    def next_awake(self) -> datetime | None:
        return self._wake

    def snapshot(self) -> PartitionPosition:
        # The time bounds when the events after this offset were first scored. While a resumed
        # partition re-reads, an earlier run may have scored them: keep the resumed snapshot's time.
        if self._replay_end is not None:
            return PartitionPosition(self._offset, self._resumed_at_ms)
        return PartitionPosition(self._offset, int(time.time() * 1000))

    def close(self) -> None:
        self._consumer.close()


class HeldKafkaSource(FixedPartitionedSource[list[SourceMessage], PartitionPosition]):
    """Every partition of ``topic``, polled in batches, held while ``gate()`` is False.

    A partition resumed from a snapshot is reported to ``on_resume`` (see ResumeListener), and so
    is one without a snapshot when ``unsnapshotted_since_ms`` says since when earlier runs may have
    read it (an existing recovery whose runs all crashed before their first snapshot).
    """

    def __init__(self, settings: Settings, topic: str, gate: Gate, batch_size: int = 1000, tail: bool = True,
                 on_resume: ResumeListener | None = None, unsnapshotted_since_ms: int | None = None) -> None:
        self.settings, self.topic, self.gate = settings, topic, gate
        self.batch_size, self.tail, self.on_resume = batch_size, tail, on_resume
        self.unsnapshotted_since_ms = unsnapshotted_since_ms

    def list_parts(self) -> list[str]:
        """One Bytewax partition per Kafka partition."""
        admin = make_admin(self.settings)
        metadata = admin.list_topics(self.topic, timeout=30)
        topic = metadata.topics[self.topic]
        if topic.error is not None:
            raise RuntimeError(f"cannot read topic {self.topic}: {topic.error.str()}")
        return [str(p) for p in sorted(topic.partitions)]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: PartitionPosition | int | None) -> _HeldPartition:
        """Resume the partition at its snapshotted offset, or start from the beginning."""
        # fetch.queue.backoff.ms: once the prefetch queue holds queued.min.messages, librdkafka
        # waits this long before fetching again (default 1 s): with 20,000 that capped a partition
        # at ~32,000 events/s (measured, bench/ceiling.py); 10 ms keeps fetching ahead of the flow.
        config = consumer_config(self.settings, group_id=f"edml-{step_id}",
                                 **{"enable.partition.eof": not self.tail, "fetch.wait.max.ms": 50,
                                    "queued.min.messages": 20000, "fetch.queue.backoff.ms": 10})
        if isinstance(resume_state, int):  # a snapshot of an earlier version: the offset alone
            resume_state = PartitionPosition(resume_state, -1)
        offset = OFFSET_BEGINNING if resume_state is None else resume_state.offset
        part = _HeldPartition(config, self.topic, int(for_part), offset, self.batch_size, self.gate, self.tail)
        if self.on_resume is None:
            return part
        if resume_state is not None and resume_state.at_ms >= 0:
            part.report_replay(self.on_resume, resume_state.at_ms, snapshotted=True)
        elif resume_state is None and self.unsnapshotted_since_ms is not None:
            part.report_replay(self.on_resume, self.unsnapshotted_since_ms, snapshotted=False)
        return part
