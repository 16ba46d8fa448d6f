"""The training set from what really happened: recorded events joined with their labels, split in time.

The recorder's archive (``edml.replay``) holds the pipeline's input events and its label topic,
byte for byte. The set is every event of the declared recent window (by the pipeline's event-time
field, ending at the newest recorded event) that has a label, joined by the pipeline's key,
oldest first. The newest ``holdout`` share is held out: the candidate never trains on it, and the
replay gate scores it with both the candidate and the champion. A random split would let the
candidate learn from the very hours it is judged on; a split in time asks what a deployment asks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edml.core.config import Settings
from edml.kafka.messages import SourceMessage
from edml.kafka.reading import decode_messages
from edml.pipelines.autopilot import TrainingSet
from edml.pipelines.bound import BoundPipeline
from edml.replay.archive import EVENTS, LABELS, ArchiveReader
from edml.replay.recorder import write_archive
from edml.replay.report import key_text, label_value
from edml.replay.run import replay_serdes
from edml.schemas.serde import DecodeError


@dataclass(frozen=True)
class Joined:
    """The recorded window: events with a label, as training rows and as the archived messages."""

    rows: list[dict[str, Any]]
    events: list[SourceMessage]  # the event message of each row
    labels: dict[str, SourceMessage]  # key -> the label message
    window_start: int
    window_end: int
    recorded: int  # events in the archive
    in_window: int  # of those, in the window
    undecodable: int


def join_recorded(archive: ArchiveReader, bound: BoundPipeline, settings: Settings, window_ms: int) -> Joined:
    """Events of the last ``window_ms`` (event time) in ``archive`` that have a label, oldest first."""
    labels_decl = bound.pipeline.labels
    if labels_decl is None or bound.label_schema is None:
        raise bound.pipeline.error("[autopilot] needs [labels]: a training set joins events with their labels")
    serdes = replay_serdes(settings, bound)
    event_serde = serdes.for_schema(settings.topics.trips, bound.schema)
    label_serde = serdes.for_schema(settings.topics.labels, bound.label_schema)
    key, when = bound.pipeline.input.key, bound.pipeline.input.event_time
    label_msgs: dict[str, SourceMessage] = {}
    label_values: dict[str, float] = {}
    labels, bad_labels = _archived(archive, LABELS, settings.topics.labels, label_serde.decode)
    for msg, record in labels:
        value = label_value(record.get(labels_decl.field), labels_decl.task)
        if value is not None:
            k = key_text(record.get(labels_decl.key))
            label_msgs[k], label_values[k] = msg, value
    archived, bad_events = _archived(archive, EVENTS, settings.topics.trips, event_serde.decode)
    decoded = [(t, record, msg) for msg, record in archived if isinstance(t := record.get(when), int)]
    bad = bad_labels + bad_events
    end = max((t for t, _, _ in decoded), default=0) + 1
    start = end - window_ms
    recent = sorted((d for d in decoded if d[0] >= start), key=lambda d: (d[0], key_text(d[1].get(key))))
    rows, events = [], []
    for _, record, msg in recent:
        k = key_text(record.get(key))
        if k in label_values:
            rows.append({**record, labels_decl.field: label_values[k]})
            events.append(msg)
    return Joined(rows, events, {key_text(r.get(key)): label_msgs[key_text(r.get(key))] for r in rows},
                  start, end, len(decoded), len(recent), bad)


def _archived(archive: ArchiveReader, role: str, topic: str,
              decode: Callable[[Any], dict[str, Any]]) -> tuple[list[tuple[SourceMessage, dict[str, Any]]], int]:
    """The archived messages of ``role`` (recorded from ``topic``) decoded, and how many were not decodable."""
    found = archive.role_for(role, topic)
    return decode_messages(archive.messages(found) if found else (), decode, DecodeError)


def split_in_time(n: int, holdout: float) -> int:
    """How many of ``n`` rows (oldest first) are trained on; the rest, the newest, are held out (at least one each)."""
    if n < 2:
        return n
    held = min(n - 1, max(1, round(n * holdout)))
    return n - held


def training_set(joined: Joined, bound: BoundPipeline, upto: int) -> TrainingSet:
    """The first ``upto`` joined rows as a trainer's training set."""
    labels = bound.pipeline.labels
    assert labels is not None  # join_recorded refused a pipeline without labels
    rows = joined.rows[:upto]
    when = bound.pipeline.input.event_time
    return TrainingSet(bound.name, rows, bound.pipeline.input.key, when, labels.field, labels.task,
                       int(rows[0][when]) if rows else joined.window_start,
                       int(rows[-1][when]) + 1 if rows else joined.window_end)


def holdout_archive(joined: Joined, bound: BoundPipeline, since: int, folder: Path) -> Path:
    """A replay archive of the held-out rows (from index ``since``): their events and their labels."""
    key = bound.pipeline.input.key
    events: dict[int, list[SourceMessage]] = defaultdict(list)
    labels: dict[int, list[SourceMessage]] = defaultdict(list)
    for row, msg in zip(joined.rows[since:], joined.events[since:], strict=True):
        events[msg.partition].append(msg)
        label = joined.labels[key_text(row.get(key))]
        labels[label.partition].append(label)
    write_archive(folder, {
        EVENTS: [sorted(ms, key=lambda m: m.offset) for _, ms in sorted(events.items())],
        LABELS: [sorted(ms, key=lambda m: m.offset) for _, ms in sorted(labels.items())],
    })
    return folder
