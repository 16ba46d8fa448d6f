"""Predictions already emitted before a restart, re-emitted byte for byte when their trips come again.

Output is at-least-once: after a crash, Bytewax resumes each trips partition at its last
snapshot, and the trips read since then are scored again. Their first predictions may already be
on the topic, stamped with the wall-clock ``scored_at`` and latency of that first scoring. So
that a repeat is byte-identical to the first (a compacted or idempotent consumer then cannot
tell them apart), a resumed process reads the predictions emitted since the oldest snapshot it
resumed from and sends those bytes again in place of new ones, until each resumed partition has
been scored up to the end it had at the restart (later trips were never read before).

A first emission is matched by the **source position** of the trip it was scored from (topic,
partition, offset), which every prediction carries in its ``edml-source`` header; never by the
trip id alone: a corrected trip sent again under the same id is another event with its own
prediction (keyed by id, both were re-emitted with the first one's bytes, a replaced model's).
"""

from __future__ import annotations

import logging
import threading
from typing import cast

from confluent_kafka import KafkaException

from edml.core.config import Settings
from edml.kafka.messages import OutgoingMessage
from edml.kafka.reading import read_with_headers
from edml.pipelines.events import EventBatch

log = logging.getLogger("edml.scoring.reemission")
# Snapshot times come from the clock of the process that took them, which may be another host's.
CLOCK_SKEW_MS = 5_000
_READ_TIMEOUT_S = 120.0
# The header each prediction carries: b"<source topic>/<partition>/<offset>" of its trip.
SOURCE_HEADER = "edml-source"


def source_position(header_value: bytes) -> tuple[str, int, int]:
    """(topic, partition, offset) from an ``edml-source`` header value."""
    topic, partition, offset = header_value.decode().rsplit("/", 2)
    return topic, int(partition), int(offset)


def source_positions(batch: EventBatch) -> list[bytes] | None:
    """One ``edml-source`` header value per trip of ``batch`` (one partition's); None without positions."""
    if batch.last_message is None or len(batch.offsets) != len(batch):
        return None
    topic, partition, _ = batch.last_message
    prefix = b"%s/%d/" % (topic.encode(), partition)
    return [prefix + b"%d" % o for o in batch.offsets]


class EmittedPredictions:
    """Told by the trips source which partitions re-read trips; used by the scorer per batch."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topics = (settings.topics.predictions, settings.topics.shadow_predictions)
        self._lock = threading.Lock()
        self._replay_ends: dict[tuple[str, int], int] = {}  # partition -> its end offset at the restart
        self._snapshot_ms: list[int] = []
        self._unsnapshotted_ms: list[int] = []
        self._since_ms: int | None = None
        self._emitted: dict[tuple[str, bytes], bytes] | None = None  # (topic, source header) -> value
        self._reused = 0

    def resumed(self, topic: str, partition: int, snapshot_ms: int, end_offset: int, snapshotted: bool) -> None:
        """A trips partition re-reads up to ``end_offset`` from a snapshot taken at ``snapshot_ms``.

        A partition without a snapshot (``snapshotted`` False) comes with the earliest time a run
        may have read it. When other partitions have snapshots it is a partition the last
        snapshot did not know yet, which only runs since then can have read: their time counts.
        """
        with self._lock:
            self._replay_ends[(topic, partition)] = end_offset
            (self._snapshot_ms if snapshotted else self._unsnapshotted_ms).append(snapshot_ms)
            since = min(self._snapshot_ms or self._unsnapshotted_ms)
            if since != self._since_ms:
                self._since_ms = since
                self._emitted = None  # (re)read from the new point when first needed

    def reuse(self, batch: EventBatch, messages: list[OutgoingMessage]) -> None:
        """Give the batch's predictions that were sent before a restart their first bytes.

        ``messages`` are the batch's predictions, each stamped with its trip's source position
        (``edml-source`` header, see ``source_positions``) by the encoder.
        """
        last_message = batch.last_message
        if last_message is None or not messages:
            return
        topic, partition, offset = last_message
        if not self._replay_ends:  # the common case: nothing re-read
            return
        end = self._replay_ends.get((topic, partition))
        if end is None:
            return
        emitted = self._load()
        reused = 0
        for m in messages:
            if not m.headers:
                continue
            first = emitted.get((m.topic, cast(bytes, m.headers[0][1])))
            if first is not None:
                m.value = first
                reused += 1
        with self._lock:
            self._reused += reused
            if offset + 1 >= end:
                self._caught_up(topic, partition)

    def _caught_up(self, topic: str, partition: int) -> None:
        self._replay_ends.pop((topic, partition), None)
        if not self._replay_ends:
            log.info("re-read trips all scored again; %d predictions were re-emitted as first sent", self._reused)
            self._since_ms, self._emitted, self._reused = None, None, 0
            self._snapshot_ms, self._unsnapshotted_ms = [], []

    def _load(self) -> dict[tuple[str, bytes], bytes]:
        with self._lock:
            if self._since_ms is None:  # caught up meanwhile
                return {}
            if self._emitted is None:
                since = self._since_ms - CLOCK_SKEW_MS
                emitted: dict[tuple[str, bytes], bytes] = {}
                try:
                    for topic in self._topics:
                        for m, headers in read_with_headers(self._settings, topic, timeout=_READ_TIMEOUT_S,
                                                            since_ms=since):
                            position = next((v for k, v in headers if k == SOURCE_HEADER), None)
                            if position is not None and m.value is not None:
                                emitted.setdefault((topic, position), m.value)
                except KafkaException as e:  # scoring goes on; only the repeats' bytes are at stake
                    log.warning("could not read the predictions emitted before the restart (%s): trips scored "
                                "again get new predictions", e)
                log.info("read %d predictions emitted since the resumed snapshots", len(emitted))
                self._emitted = emitted
            return self._emitted
