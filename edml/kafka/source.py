"""A Bytewax source over Kafka partitions whose items are whole polled batches.

Each Kafka partition is a Bytewax partition (recovery snapshots its next offset). An item is
the list of messages of one poll, so the operators downstream run once per batch, not per
event. A ``gate`` holds every partition while it returns False: the partition then emits
nothing and keeps its offset, so events wait at the source (none lost, recovery exact).

Recovery stays the truth of where to resume; the topic may have changed under it. A snapshot
carries the topic's id: a re-created topic (same name, new id), a snapshotted offset past the
end or before the start (retention), or a partition the topic no longer has is handled by the
``on_topic_change`` setting: ``earliest`` (the default) logs, counts
(``edml_source_topic_changes``) and reads the partition from its earliest offset, never a
silent skip; ``exit`` stops with exit code 2 and one line naming the topic and the fix.
Partitions added while serving are noticed within ``partition_check_s``: the dataflow ends at
its next snapshot (``RESTART``) and the service runs it again, which then reads them from the
beginning. After each snapshot the snapshotted offset is committed to the consumer group named
after the dataflow, for monitoring tools only (a committed offset is never used to resume), and
``edml_source_lag`` is set.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast

from bytewax.connectors.kafka import KafkaSource
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition

from edml.core.config import Settings
from edml.core.metrics import EVENTS_IN, HELD_EVENTS, SOURCE_LAG, TOPIC_CHANGES
from edml.kafka.clients import consumer_config, make_admin
from edml.kafka.messages import SourceMessage

log = logging.getLogger("edml.source")
Gate = Callable[[], bool]
# Set by a SIGTERM/SIGINT handler: every partition then ends, Bytewax closes the last epoch
# (snapshot + sink flush) and the dataflow returns, instead of an interrupt inside a callback.
STOP = threading.Event()
# Set when the topic gained partitions: every partition ends like on STOP, and the service runs
# the dataflow again from that last snapshot, now with the new partitions.
RESTART = threading.Event()
_RESTART_LOCK = threading.Lock()
# An idle partition (one the topic no longer has) looks at STOP/RESTART this often.
_IDLE_POLL = timedelta(seconds=1)
_HELD_POLL = timedelta(milliseconds=200)
# How long one poll waits for a full batch. A worker polls its partitions one after another, so
# every partition's wait adds to every trip's latency: at 5,000 trips/s over 2 partitions a 50 ms
# wait gave a p99 over 100 ms. Under load a batch fills from librdkafka's prefetched queue at
# once, so a short wait costs no throughput.
_POLL_TIMEOUT_S = 0.005
_HELD_LOG_EVERY_S = 10.0
# How often a partition looks for partitions added to its topic (EDML_PARTITION_CHECK_S).
PARTITION_CHECK_S = float(os.environ.get("EDML_PARTITION_CHECK_S", "30"))


@dataclass(frozen=True)
class PartitionPosition:
    """A partition's snapshot: the next offset to read, and when the snapshot was taken."""

    offset: int
    at_ms: int
    # The topic's id when snapshotted (None in snapshots of earlier versions): a topic deleted and
    # created again under the same name has another id, and its offsets start again.
    topic_id: str | None = None


@dataclass(frozen=True)
class TopicShape:
    """What a topic is now: its id and its partitions."""

    topic_id: str | None
    partitions: frozenset[int]


def describe_topic(settings: Settings, topic: str) -> TopicShape:
    """The topic's id and partitions (RuntimeError when it cannot be read)."""
    admin = make_admin(settings)
    try:
        description = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=30)
    except KafkaException as e:
        raise RuntimeError(f"cannot read topic {topic}: {e.args[0].str() if e.args else e}") from None
    return TopicShape(str(description.topic_id), frozenset(p.id for p in description.partitions))


class TopicChanged(Exception):
    """The topic under a partition's recovery state changed; ``change`` names how."""

    def __init__(self, change: str, detail: str) -> None:
        super().__init__(detail)
        self.change = change


class ResumeListener(Protocol):
    """Told which partitions re-read events after a restart."""

    def resumed(self, topic: str, partition: int, snapshot_ms: int, end_offset: int, snapshotted: bool) -> None:
        """``partition`` re-reads up to ``end_offset`` from a snapshot taken at ``snapshot_ms``.

        ``snapshotted`` is False for a partition without a snapshot, re-read from its beginning:
        ``snapshot_ms`` is then the earliest time an earlier run may have read it.
        """


class _HeldPartition(StatefulSourcePartition[list[SourceMessage], PartitionPosition]):
    def __init__(self, config: dict, topic: str, partition: int, batch_size: int, gate: Gate, tail: bool,
                 partition_check_s: float) -> None:
        self._consumer = Consumer(config)
        self._topic, self._partition, self._offset = topic, partition, OFFSET_BEGINNING
        self._batch_size, self._gate, self._tail = batch_size, gate, tail
        self.shape, self._partition_check_s = TopicShape(None, frozenset()), partition_check_s  # set by the source
        self._next_check = time.monotonic() + partition_check_s
        self._committed = OFFSET_BEGINNING
        self._lag_gauge = SOURCE_LAG.labels(topic, str(partition))
        self._replay_end: int | None = None
        self._resumed_at_ms = -1
        self._held_since: float | None = None
        self._last_held_log = 0.0
        self._eof = False
        self._wake: datetime | None = None
        self._held_gauge = HELD_EVENTS.labels(topic, str(partition))

    def watermarks(self) -> tuple[int, int]:
        """The partition's first and next offsets, asked of the broker."""
        return self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition), timeout=30,
                                                    cached=False)

    def start(self, offset: int) -> None:
        """Read from ``offset`` (OFFSET_BEGINNING: the earliest)."""
        self._offset = offset
        self._consumer.assign([TopicPartition(self._topic, self._partition, offset)])

    def next_batch(self) -> list[list[SourceMessage]]:
        if self._eof or STOP.is_set() or RESTART.is_set():
            raise StopIteration()
        if time.monotonic() >= self._next_check:
            self._check_partitions()
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
            batch.append(SourceMessage(self._topic, self._partition, cast(int, msg.offset()), msg.key(), msg.value(),
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
            self._lag_gauge.set(held)
            where = f"offset {self._offset}" if self._offset >= 0 else "the beginning"
            log.info("partition %s-%d holds %d events at %s: no model is active yet",
                     self._topic, self._partition, held, where)

    def _check_partitions(self) -> None:
        """Partitions added to the topic: count them and end the dataflow to read them after a restart."""
        self._next_check = time.monotonic() + self._partition_check_s
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=5)
        except KafkaException as e:  # checked again next time
            log.debug("partition check of %s: %s", self._topic, e)
            return
        topic = metadata.topics.get(self._topic)
        added = set() if topic is None or topic.error is not None else set(topic.partitions) - self.shape.partitions
        if not added:
            return
        with _RESTART_LOCK:  # one worker tells it once
            if RESTART.is_set():
                return
            for p in sorted(added):
                TOPIC_CHANGES.labels(self._topic, str(p), "partition-added").inc()
            log.warning("topic %s gained partitions %s: restarting the dataflow from its next snapshot to "
                        "read them", self._topic, sorted(added))
            RESTART.set()

    def next_awake(self) -> datetime | None:
        return self._wake

    def snapshot(self) -> PartitionPosition:
        offset = self._offset
        if offset >= 0 and offset != self._committed:
            # for monitoring tools only: resuming uses the recovery snapshot, never this
            try:
                self._consumer.commit(offsets=[TopicPartition(self._topic, self._partition, offset)],
                                      asynchronous=True)
                self._committed = offset
            except KafkaException as e:
                log.debug("partition %s-%d: offset not committed (%s)", self._topic, self._partition, e)
        # high watermark as of the last fetch: no request to the broker per snapshot
        low, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition), cached=True)
        if high >= 0:
            self._lag_gauge.set(max(0, high - (offset if offset >= 0 else max(low, 0))))
        # The time bounds when the events after this offset were first scored. While a resumed
        # partition re-reads, an earlier run may have scored them: keep the resumed snapshot's time.
        at_ms = self._resumed_at_ms if self._replay_end is not None else int(time.time() * 1000)
        return PartitionPosition(offset, at_ms, self.shape.topic_id)

    def close(self) -> None:
        if self._offset >= 0 and self._offset != self._committed:
            try:
                self._consumer.commit(offsets=[TopicPartition(self._topic, self._partition, self._offset)],
                                      asynchronous=False)
            except KafkaException:
                pass
        self._consumer.close()


class _GonePartition(StatefulSourcePartition[list[SourceMessage], PartitionPosition]):
    """A partition the recovery state knows but the topic no longer has: reads nothing, keeps its state."""

    def __init__(self, state: PartitionPosition | None) -> None:
        self._state = state

    def next_batch(self) -> list[list[SourceMessage]]:
        if STOP.is_set() or RESTART.is_set():
            raise StopIteration()
        return []

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + _IDLE_POLL

    def snapshot(self) -> PartitionPosition | None:  # type: ignore[override]
        return self._state


class HeldKafkaSource(FixedPartitionedSource[list[SourceMessage], PartitionPosition]):
    """Every partition of ``topic``, polled in batches, held while ``gate()`` is False.

    A partition resumed from a snapshot is reported to ``on_resume`` (see ResumeListener), and so
    is one without a snapshot when ``unsnapshotted_since_ms`` says since when earlier runs may have
    read it (an existing recovery whose runs all crashed before their first snapshot).
    ``known_parts`` is a file remembering every partition listed before, so that a recovery state
    holding partitions the topic no longer has still finds each of them a home.
    """

    def __init__(self, settings: Settings, topic: str, gate: Gate, batch_size: int = 1000, tail: bool = True,
                 on_resume: ResumeListener | None = None, unsnapshotted_since_ms: int | None = None,
                 known_parts: Path | None = None, partition_check_s: float = PARTITION_CHECK_S) -> None:
        self.settings, self.topic, self.gate = settings, topic, gate
        self.batch_size, self.tail, self.on_resume = batch_size, tail, on_resume
        self.unsnapshotted_since_ms = unsnapshotted_since_ms
        self.known_parts, self.partition_check_s = known_parts, partition_check_s
        self._shape: TopicShape | None = None

    def list_parts(self) -> list[str]:
        """One Bytewax partition per Kafka partition, and per partition listed before."""
        self._shape = describe_topic(self.settings, self.topic)
        parts = set(self._shape.partitions) | self._remembered()
        if self.known_parts is not None and parts != self._remembered():
            self.known_parts.parent.mkdir(parents=True, exist_ok=True)
            self.known_parts.write_text(json.dumps({"topic": self.topic, "partitions": sorted(parts)}))
        return [str(p) for p in sorted(parts)]

    def _remembered(self) -> set[int]:
        if self.known_parts is None:
            return set()
        try:
            known = json.loads(self.known_parts.read_text())
        except (OSError, ValueError):
            return set()
        return set(known["partitions"]) if known.get("topic") == self.topic else set()

    def build_part(self, step_id: str, for_part: str, resume_state: PartitionPosition | int | None
                   ) -> StatefulSourcePartition[list[SourceMessage], PartitionPosition]:
        """Resume the partition at its snapshotted offset, or start from the beginning.

        A snapshot the topic no longer matches is handled by the ``on_topic_change`` setting.
        """
        if isinstance(resume_state, int):  # a snapshot of an earlier version: the offset alone
            resume_state = PartitionPosition(resume_state, -1)
        partition = int(for_part)
        # fetch.queue.backoff.ms: once the prefetch queue holds queued.min.messages, librdkafka
        # waits this long before fetching again (default 1 s): with 20,000 that capped a partition
        # at ~32,000 events/s (measured, bench/ceiling.py); 10 ms keeps fetching ahead of the flow.
        # group.id: the dataflow's name, the group monitoring tools show (offsets are only committed)
        config = consumer_config(self.settings, group_id=step_id.split(".")[0],
                                 **{"enable.partition.eof": not self.tail, "fetch.wait.max.ms": 50,
                                    "queued.min.messages": 20000, "fetch.queue.backoff.ms": 10})
        part = _HeldPartition(config, self.topic, partition, self.batch_size, self.gate, self.tail,
                              self.partition_check_s)
        # Bytewax lists the parts (which describes the topic) before it builds any
        shape = part.shape = self._shape or describe_topic(self.settings, self.topic)
        if partition not in shape.partitions:
            part.close()
            if resume_state is not None:
                self._topic_changed(partition, TopicChanged(
                    "partition-gone", f"the recovery state holds partition {partition}, which the topic no longer "
                    f"has (it has {len(shape.partitions)})"))
            return _GonePartition(resume_state)
        try:
            offset = self._resume_offset(part, resume_state, shape)
        except TopicChanged as change:
            self._topic_changed(partition, change)
            part.start(OFFSET_BEGINNING)
            return part  # nothing of the new topic was read before: no re-emission to match
        part.start(offset)
        if self.on_resume is None:
            return part
        if resume_state is not None and resume_state.at_ms >= 0:
            part.report_replay(self.on_resume, resume_state.at_ms, snapshotted=True)
        elif resume_state is None and self.unsnapshotted_since_ms is not None:
            part.report_replay(self.on_resume, self.unsnapshotted_since_ms, snapshotted=False)
        return part

    def _resume_offset(self, part: _HeldPartition, state: PartitionPosition | None, shape: TopicShape) -> int:
        """The snapshotted offset, when the topic is still the one it was taken of (else TopicChanged)."""
        if state is None or state.offset < 0:
            return OFFSET_BEGINNING if state is None else state.offset
        if state.topic_id is not None and shape.topic_id is not None and state.topic_id != shape.topic_id:
            raise TopicChanged("topic-recreated", f"the topic was re-created (id {shape.topic_id}, the recovery "
                               f"state's is {state.topic_id}); its snapshotted offset {state.offset} is void")
        try:
            low, high = part.watermarks()
        except KafkaException as e:  # the topic exists (listed a moment ago): resume as snapshotted
            log.warning("topic %s: offsets unknown (%s); resuming at the snapshotted %d", self.topic, e, state.offset)
            return state.offset
        if state.offset > high:
            raise TopicChanged("offset-past-end", f"the snapshotted offset {state.offset} is past the end "
                               f"({high}): the topic was re-created or truncated")
        if state.offset < low:
            raise TopicChanged("offset-before-start", f"the snapshotted offset {state.offset} is before the first "
                               f"offset still held ({low}): {low - state.offset} events were deleted unread")
        return state.offset

    def _topic_changed(self, partition: int, change: TopicChanged) -> None:
        """Apply the on_topic_change policy: exit 2 with one line, or log and count and go on."""
        where = f"topic {self.topic} partition {partition}"
        if self.settings.on_topic_change == "exit":
            line = (f"{where}: {change}; to read it from its earliest offset set EDML_ON_TOPIC_CHANGE=earliest, "
                    "or remove the state folder's recovery to start afresh")
            log.error(line)
            print(f"edml: error: {line}", file=sys.stderr, flush=True)
            # inside the dataflow an exception becomes a Rust panic and a traceback: leave at once
            # (nothing of this partition was read; what other partitions sent is re-sent after a restart)
            os._exit(2)
        TOPIC_CHANGES.labels(self.topic, str(partition), change.change).inc()
        if change.change == "partition-gone":
            log.warning("%s: %s; it reads nothing and keeps its state", where, change)
        else:
            log.warning("%s: %s; reading it from its earliest offset", where, change)


class CommittingKafkaSource(KafkaSource):
    """Bytewax's KafkaSource whose partitions commit each snapshotted offset and set ``edml_source_lag``.

    Give ``add_config`` a ``group.id`` (the dataflow's name): the group monitoring tools show.
    As for HeldKafkaSource, the commit is for them only; recovery resumes from its snapshots.
    """

    # a wrapper, not bytewax's private partition class: Bytewax needs only a StatefulSourcePartition
    def build_part(self, step_id: str, for_part: str,  # type: ignore[override]
                   resume_state: int | None) -> _CommittingPartition:
        """Bytewax's partition, wrapped."""
        return _CommittingPartition(super().build_part(step_id, for_part, resume_state))


class _CommittingPartition(StatefulSourcePartition[Any, int | None]):
    def __init__(self, inner: Any) -> None:  # noqa: ANN401 - bytewax's private _KafkaSourcePartition
        self._inner = inner
        self._consumer: Consumer = inner._consumer  # noqa: SLF001 - the one consumer of this partition
        self._tp = TopicPartition(inner._topic, inner._part_idx)  # noqa: SLF001
        self._committed: int | None = None
        self._lag_gauge = SOURCE_LAG.labels(inner._topic, str(inner._part_idx))  # noqa: SLF001

    def next_batch(self) -> list[Any]:
        return self._inner.next_batch()

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> int | None:
        offset = self._inner.snapshot()
        if offset is not None and offset >= 0 and offset != self._committed:
            try:
                self._consumer.commit(offsets=[TopicPartition(self._tp.topic, self._tp.partition, offset)],
                                      asynchronous=True)
                self._committed = offset
            except KafkaException as e:
                log.debug("%s-%d: offset not committed (%s)", self._tp.topic, self._tp.partition, e)
        low, high = self._consumer.get_watermark_offsets(self._tp, cached=True)
        if high >= 0:
            self._lag_gauge.set(max(0, high - (offset if offset is not None and offset >= 0 else max(low, 0))))
        return offset

    def close(self) -> None:
        self._inner.close()
