"""Read the model topic (desired state and history) and the model-status topic.

The model topic is compacted and keyed by model name: the latest record per key is the model
that must serve, a tombstone (null value) means the name is retired. Before compaction runs,
older records are still on the topic; they make up a name's history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edml.schemas.records import ModelRecord, ModelStatus
from edml.schemas.serde import DecodeError
from edml.schemas.wire import RecordSerde, topic_serdes

from edml.core.config import Settings
from edml.kafka.reading import Message, read_to_end

log = logging.getLogger(__name__)

def read_topic(settings: Settings, topic: str) -> list[Message]:
    """Every message of ``topic`` (``read_to_end``, which retries while leadership settles)."""
    return read_to_end(settings, topic)


@dataclass(frozen=True)
class TopicEntry:
    """One message of the model topic: a record, or a tombstone (``record`` None) for ``model_name``."""

    model_name: str
    record: ModelRecord | None
    offset: int
    timestamp_ms: int


def _entries(messages: list[Message], serde: RecordSerde[ModelRecord]) -> list[TopicEntry]:
    out = []
    for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
        if m.key is None:
            log.warning("model topic offset %s has no key; skipped", m.offset)
            continue
        name = m.key.decode("utf-8", errors="replace")
        if m.value is None:
            out.append(TopicEntry(name, None, m.offset, m.timestamp_ms))
            continue
        try:
            record = serde.decode(m.value)
        except DecodeError as e:
            log.warning("model topic offset %s (%s) is not a ModelRecord: %s; skipped", m.offset, name, e)
            continue
        out.append(TopicEntry(name, record, m.offset, m.timestamp_ms))
    return out


def model_topic_entries(settings: Settings) -> list[TopicEntry]:
    """Every readable message of the model topic, in topic order."""
    return _entries(read_topic(settings, settings.topics.models), topic_serdes(settings).models)


def desired_from(entries: list[TopicEntry]) -> dict[str, ModelRecord]:
    """Latest record per model name; a tombstone removes the name."""
    desired: dict[str, ModelRecord] = {}
    for entry in entries:
        if entry.record is None:
            desired.pop(entry.model_name, None)
        else:
            desired[entry.model_name] = entry.record
    return desired


def desired_records(settings: Settings) -> dict[str, ModelRecord]:
    """Model name -> the record that must serve now (latest per key; tombstoned names absent)."""
    return desired_from(model_topic_entries(settings))


def record_history(settings: Settings, name: str) -> list[ModelRecord]:
    """Every record of ``name`` still on the topic, oldest first (tombstones left out)."""
    return [e.record for e in model_topic_entries(settings) if e.model_name == name and e.record is not None]


def latest_statuses(settings: Settings) -> list[ModelStatus]:
    """The latest ModelStatus per (process, model name), ordered by process then name."""
    serde = topic_serdes(settings).model_status
    decoded: list[tuple[int, int, ModelStatus]] = []
    for m in read_topic(settings, settings.topics.model_status):
        try:
            decoded.append((m.partition, m.offset, serde.decode(m.value)))
        except DecodeError as e:
            log.warning("model-status offset %s is not a ModelStatus: %s; skipped", m.offset, e)
    latest: dict[tuple[str, str], ModelStatus] = {}
    # by the status's own time, then by position: the last one a process wrote wins
    for _, _, status in sorted(decoded, key=lambda d: (d[2].time, d[0], d[1])):
        latest[(status.process, status.model_name)] = status
    return [latest[k] for k in sorted(latest)]


@dataclass(frozen=True)
class VersionRow:
    """One version of one model name as ``edml models list`` shows it."""

    model_name: str
    version: str
    desired: bool
    on_topic: bool
    in_store: bool
    mae: float | None
    published_at: int | None


def version_rows(entries: list[TopicEntry], store_versions: dict[str, list[str]]) -> list[VersionRow]:
    """Every version known to the topic or the store, per name, the desired one marked."""
    from edml.model_topic.stores import sort_versions

    desired = desired_from(entries)
    on_topic: dict[str, dict[str, ModelRecord]] = {}
    for entry in entries:
        if entry.record is not None:
            on_topic.setdefault(entry.model_name, {})[entry.record.version] = entry.record
    rows = []
    for name in sorted(set(on_topic) | set(store_versions) | set(desired)):
        topic_versions = on_topic.get(name, {})
        stored = set(store_versions.get(name, []))
        for version in sort_versions(list(set(topic_versions) | stored)):
            record = topic_versions.get(version)
            rows.append(
                VersionRow(
                    model_name=name,
                    version=version,
                    desired=name in desired and desired[name].version == version,
                    on_topic=record is not None,
                    in_store=version in stored,
                    mae=record.metrics.get("mae") if record else None,
                    published_at=record.published_at if record else None,
                )
            )
    return rows
