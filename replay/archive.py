"""The replay archive: an exact copy of messages as the topics held them.

Layout of an archive folder::

    index.json                    # every finished segment: role, topic, partition, records, bytes, offsets
    events/p0/000000.avro         # Avro object container files, one stream per (role, partition),
    events/p0/000001.avro         #   rolled by size or age
    events/p1/000000.avro
    labels/p0/000000.avro
    events/p0/000002.avro.part    # a segment being written (ignored by readers)

A pipeline's archive holds two roles: ``events`` (its input topic, what a replay scores) and
``labels`` (its label topic, the truth a report compares with). Archives written before pipelines
named their roles after the taxi topics; a reader finds a role by name or, failing that, by the
topic it was recorded from (:meth:`ArchiveReader.role_for`), and a writer keeps appending a topic
under the role the archive already holds it as (:meth:`ArchiveWriter.role_of_topic`): an old
archive replays, and a recorder resumes it.

Each record keeps the message's topic, partition, offset, Kafka timestamp, key and value bytes
(:data:`ARCHIVED_MESSAGE_SCHEMA`), so a replay decodes exactly what the models saw, bad events
included. Within a partition, segments hold increasing offsets; the writer drops a message at
or below the partition's last archived offset, so a resumed recorder never duplicates one.

A segment is written as ``.part``, one Avro block per append, and renamed into place when it
rolls; only then does the index list it, with its size and record count. The index is what makes
damage detectable: a truncated or extended segment, a missing one, or one whose blocks do not
decode raises :class:`ArchiveError` naming the file and the byte position.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import fastavro

from edml.core.errors import OperatorError
from edml.kafka.messages import SourceMessage

log = logging.getLogger("edml.replay.archive")

# the roles a replay reads: events are scored, labels are the truth a report compares with
EVENTS = "events"
LABELS = "labels"
INDEX_NAME = "index.json"
FORMAT = "edml-replay-archive"
FORMAT_VERSION = 1
SEGMENT_SUFFIX = ".avro"
PART_SUFFIX = ".part"
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_SEGMENT_AGE_S = 3600.0
_ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_SEQUENCE = re.compile(r"^(\d{6,})\.avro(\.part)?$")

ARCHIVED_MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "ArchivedMessage",
    "namespace": "edml.replay",
    "doc": "One Kafka message as the topic held it.",
    "fields": [
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "timestamp_ms", "type": "long", "doc": "the message's Kafka timestamp"},
        {"name": "key", "type": ["null", "bytes"]},
        {"name": "value", "type": ["null", "bytes"]},
    ],
}
_PARSED_SCHEMA = fastavro.parse_schema(ARCHIVED_MESSAGE_SCHEMA)


class ArchiveError(OperatorError):
    """An archive that cannot be read or written as asked; the message names the file and position."""


@dataclass(frozen=True)
class SegmentInfo:
    """One finished segment as the index lists it."""

    path: str  # relative to the archive folder, POSIX separators
    role: str
    topic: str
    partition: int
    sequence: int
    records: int
    bytes: int
    first_offset: int
    last_offset: int
    first_timestamp_ms: int
    last_timestamp_ms: int

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> SegmentInfo:
        """A segment entry of the index; ArchiveError when a field is missing or malformed."""
        try:
            return cls(
                path=str(data["path"]), role=str(data["role"]), topic=str(data["topic"]),
                partition=int(data["partition"]), sequence=int(data["sequence"]), records=int(data["records"]),
                bytes=int(data["bytes"]), first_offset=int(data["first_offset"]),
                last_offset=int(data["last_offset"]), first_timestamp_ms=int(data["first_timestamp_ms"]),
                last_timestamp_ms=int(data["last_timestamp_ms"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ArchiveError(f"{where}: malformed segment entry {data!r}: {type(e).__name__}: {e}") from None


def check_role(role: str) -> str:
    """``role`` when it is a safe folder name (lower-case letters, digits, '-', '_')."""
    if not _ROLE.match(role):
        raise ArchiveError(f"archive role {role!r} must be lower-case letters, digits, '-' or '_'")
    return role


def _record(msg: SourceMessage) -> dict[str, Any]:
    return {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
            "timestamp_ms": msg.timestamp_ms, "key": msg.key, "value": msg.value}


def _sync_marker(role: str, partition: int, sequence: int) -> bytes:
    # Avro's sync marker is random by default; derived from the segment's identity instead, the
    # same messages always give the same segment bytes (reproducible fixtures and generated archives).
    return hashlib.sha256(f"{role}/{partition}/{sequence}".encode()).digest()[:16]


def _fsync_replace(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)
    try:
        fd = os.open(final.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_index(root: Path) -> list[SegmentInfo]:
    path = root / INDEX_NAME
    try:
        body = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ArchiveError(f"{path}: not a readable archive index: {e}") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ArchiveError(f"{path}: not a replay archive index (format is not {FORMAT!r})")
    if int(body.get("format_version", 0)) > FORMAT_VERSION:
        raise ArchiveError(f"{path}: archive format_version {body.get('format_version')} is newer than this "
                           f"edml reads ({FORMAT_VERSION})")
    segments = body.get("segments")
    if not isinstance(segments, list):
        raise ArchiveError(f"{path}: 'segments' must be a list")
    return [SegmentInfo.from_json(s, path) for s in segments]


def _write_index(root: Path, segments: Sequence[SegmentInfo]) -> None:
    ordered = sorted(segments, key=lambda s: (s.role, s.partition, s.sequence))
    body = {"format": FORMAT, "format_version": FORMAT_VERSION, "schema": ARCHIVED_MESSAGE_SCHEMA,
            "segments": [asdict(s) for s in ordered]}
    tmp = root / (INDEX_NAME + ".tmp")
    with open(tmp, "w") as f:
        json.dump(body, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    _fsync_replace(tmp, root / INDEX_NAME)


# --- writing ----------------------------------------------------------------------------------


class _OpenSegment:
    """A segment being written: ``<seq>.avro.part`` until it rolls."""

    def __init__(self, root: Path, role: str, topic: str, partition: int, sequence: int, codec: str,
                 opened_at: float) -> None:
        self.root, self.role, self.topic, self.partition, self.sequence = root, role, topic, partition, sequence
        self.relpath = f"{role}/p{partition}/{sequence:06d}{SEGMENT_SUFFIX}"
        self.final = root / self.relpath
        self.part = self.final.with_name(self.final.name + PART_SUFFIX)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.file: BinaryIO = open(self.part, "wb")  # noqa: SIM115 - closed by finish()
        metadata = {"edml.role": role, "edml.topic": topic, "edml.partition": str(partition),
                    "edml.sequence": str(sequence)}
        self.writer = fastavro.write.Writer(self.file, _PARSED_SCHEMA, codec=codec, metadata=metadata,
                                            sync_marker=_sync_marker(role, partition, sequence))
        self.opened_at = opened_at
        self.records = 0
        self.first_offset = self.last_offset = -1
        self.first_ts = self.last_ts = 0

    def append(self, messages: Sequence[SourceMessage]) -> None:
        write = self.writer.write
        for msg in messages:
            write(_record(msg))
        if self.records == 0:
            self.first_offset, self.first_ts = messages[0].offset, messages[0].timestamp_ms
        self.last_offset, self.last_ts = messages[-1].offset, messages[-1].timestamp_ms
        self.records += len(messages)
        # one Avro block per append: the file on disk always ends on a block boundary
        self.writer.flush()

    def size(self) -> int:
        return self.file.tell()

    def finish(self) -> SegmentInfo | None:
        """Close the file; rename it into place (None and no file when it holds nothing)."""
        self.writer.flush()
        self.file.flush()
        os.fsync(self.file.fileno())
        size = self.file.tell()
        self.file.close()
        if self.records == 0:
            self.part.unlink(missing_ok=True)
            return None
        _fsync_replace(self.part, self.final)
        return SegmentInfo(
            path=self.relpath, role=self.role, topic=self.topic, partition=self.partition, sequence=self.sequence,
            records=self.records, bytes=size, first_offset=self.first_offset, last_offset=self.last_offset,
            first_timestamp_ms=self.first_ts, last_timestamp_ms=self.last_ts,
        )


class ArchiveWriter:
    """Appends messages to an archive folder (new or existing), one segment stream per (role, partition).

    A segment rolls once it holds ``max_segment_bytes`` or has been open ``max_segment_age_s``
    (checked on every append and by :meth:`roll_due`). Use as a context manager, or call
    :meth:`close`: unfinished segments are finished and listed in the index.
    """

    def __init__(self, root: Path | str, *, max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 max_segment_age_s: float = DEFAULT_SEGMENT_AGE_S, codec: str = "deflate",
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_segment_bytes <= 0 or max_segment_age_s <= 0:
            raise ArchiveError("segment size and age limits must be positive")
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ArchiveError(f"cannot create archive folder {self.root}: {e.strerror or e}") from None
        self.max_segment_bytes = max_segment_bytes
        self.max_segment_age_s = max_segment_age_s
        self.codec = codec
        self.clock = clock
        self.segments: list[SegmentInfo] = _read_index(self.root)
        self._open: dict[tuple[str, int], _OpenSegment] = {}
        self._last_offset: dict[tuple[str, int], int] = {}
        self._topic: dict[str, str] = {}
        for s in self.segments:
            key = (s.role, s.partition)
            self._last_offset[key] = max(self._last_offset.get(key, -1), s.last_offset)
            self._topic.setdefault(s.role, s.topic)
        for part in sorted(self.root.glob(f"*/p*/*{SEGMENT_SUFFIX}{PART_SUFFIX}")):
            log.warning("%s is an unfinished segment of an interrupted recorder: readers ignore it; its "
                        "messages are recorded again from the last finished segment", part)

    def role_of_topic(self, topic: str) -> str | None:
        """The role the archive holds ``topic``'s messages as (None: not held)."""
        return next((role for role, held in self._topic.items() if held == topic), None)

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """(role, partition) -> the first offset not yet archived, for every partition seen."""
        return {key: last + 1 for key, last in self._last_offset.items()}

    def _next_sequence(self, role: str, partition: int) -> int:
        used = [s.sequence for s in self.segments if (s.role, s.partition) == (role, partition)]
        folder = self.root / role / f"p{partition}"
        if folder.is_dir():
            for f in folder.iterdir():
                m = _SEQUENCE.match(f.name)
                if m:
                    used.append(int(m.group(1)))
        return max(used, default=-1) + 1

    def append(self, role: str, messages: Sequence[SourceMessage]) -> int:
        """Archive ``messages`` of ``role`` in the given order; returns how many were new.

        Messages at or below their partition's last archived offset are skipped (already held).
        """
        check_role(role)
        by_partition: dict[int, list[SourceMessage]] = {}
        for msg in messages:
            known = self._topic.setdefault(role, msg.topic)
            if known != msg.topic:
                raise ArchiveError(f"archive {self.root} holds role {role!r} from topic {known!r}, "
                                   f"not {msg.topic!r}: use another archive folder")
            key = (role, msg.partition)
            if msg.offset <= self._last_offset.get(key, -1):
                continue
            self._last_offset[key] = msg.offset
            by_partition.setdefault(msg.partition, []).append(msg)
        now = self.clock()
        for partition, batch in by_partition.items():
            key = (role, partition)
            segment = self._open.get(key)
            if segment is None:
                segment = self._open[key] = _OpenSegment(self.root, role, batch[0].topic, partition,
                                                         self._next_sequence(role, partition), self.codec, now)
            segment.append(batch)
            if segment.size() >= self.max_segment_bytes or now - segment.opened_at >= self.max_segment_age_s:
                self._finish(key)
        return sum(len(b) for b in by_partition.values())

    def roll_due(self) -> list[SegmentInfo]:
        """Finish the segments open for ``max_segment_age_s`` or longer; returns them."""
        now = self.clock()
        return [info for key, seg in list(self._open.items())
                if now - seg.opened_at >= self.max_segment_age_s and (info := self._finish(key)) is not None]

    def _finish(self, key: tuple[str, int]) -> SegmentInfo | None:
        info = self._open.pop(key).finish()
        if info is not None:
            self.segments.append(info)
            _write_index(self.root, self.segments)
        return info

    def close(self) -> list[SegmentInfo]:
        """Finish every open segment; returns the index's segments."""
        for key in list(self._open):
            self._finish(key)
        if not (self.root / INDEX_NAME).exists():
            _write_index(self.root, self.segments)  # an empty archive is still an archive
        return list(self.segments)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reading ----------------------------------------------------------------------------------


class ArchiveReader:
    """Reads an archive folder through its index; checks every segment before and while reading."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ArchiveError(f"replay archive {self.root} does not exist (record one with `edml record`)")
        if not (self.root / INDEX_NAME).exists():
            parts = sorted(self.root.glob(f"*/p*/*{SEGMENT_SUFFIX}{PART_SUFFIX}"))
            hint = f" ({len(parts)} unfinished segment(s): the recorder was interrupted before any rolled)" \
                if parts else ""
            raise ArchiveError(f"{self.root} is not a replay archive: it has no {INDEX_NAME}{hint}")
        self.segments = sorted(_read_index(self.root), key=lambda s: (s.role, s.partition, s.sequence))
        for part in sorted(self.root.glob(f"*/p*/*{SEGMENT_SUFFIX}{PART_SUFFIX}")):
            log.warning("ignoring %s: an unfinished segment (its recorder was interrupted)", part)
        self.check_files()

    def check_files(self) -> None:
        """ArchiveError for the first listed segment that is missing or whose size differs from the index."""
        for s in self.segments:
            path = self.path_of(s)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise ArchiveError(f"{path}: segment listed in {self.root / INDEX_NAME} is missing "
                                   f"({s.records} records of {s.topic} partition {s.partition})") from None
            if size < s.bytes:
                readable, damaged_at = _readable_prefix(path)
                raise ArchiveError(
                    f"{path}: truncated at byte {size} (the index says {s.bytes} bytes): the first {readable} "
                    f"of its {s.records} records are readable, the damage starts at byte {damaged_at}")
            if size > s.bytes:
                raise ArchiveError(f"{path}: {size - s.bytes} unexpected bytes after byte {s.bytes} "
                                   f"(the index says the segment ends there)")

    def path_of(self, segment: SegmentInfo) -> Path:
        """The segment's file."""
        return self.root / segment.path

    def roles(self) -> list[str]:
        """The roles (e.g. events, labels) the archive holds."""
        return sorted({s.role for s in self.segments})

    def role_for(self, role: str, topic: str) -> str | None:
        """``role`` when the archive holds it, else the role recorded from ``topic`` (an archive written
        before roles were named events and labels), else None."""
        if any(s.role == role for s in self.segments):
            return role
        return next((s.role for s in self.segments if s.topic == topic), None)

    def segments_of(self, role: str, partition: int | None = None) -> list[SegmentInfo]:
        """The role's segments (of one partition), in (partition, sequence) order."""
        return [s for s in self.segments if s.role == role and (partition is None or s.partition == partition)]

    def partitions(self, role: str) -> list[int]:
        """The archived Kafka partitions of ``role``."""
        return sorted({s.partition for s in self.segments_of(role)})

    def count(self, role: str) -> int:
        """How many messages of ``role`` the archive holds."""
        return sum(s.records for s in self.segments_of(role))

    def size_bytes(self, role: str) -> int:
        """Bytes of ``role``'s segments."""
        return sum(s.bytes for s in self.segments_of(role))

    def topic(self, role: str) -> str | None:
        """The topic ``role`` was recorded from."""
        return next((s.topic for s in self.segments_of(role)), None)

    def messages(self, role: str, partition: int | None = None,
                 on_segment: Callable[[SegmentInfo], None] | None = None) -> Iterator[SourceMessage]:
        """Every message of ``role`` (one partition, or all partitions one after the other), in offset order.

        ``on_segment`` is called after each segment was read whole.
        """
        for segment in self.segments_of(role, partition):
            yield from read_segment(self.path_of(segment), segment)
            if on_segment is not None:
                on_segment(segment)


def read_segment(path: Path, segment: SegmentInfo | None = None) -> Iterator[SourceMessage]:
    """The messages of one segment file; ArchiveError naming the file and byte position when it is damaged."""
    index = block_first = 0
    position = 0
    try:
        with open(path, "rb") as f:
            try:
                blocks = fastavro.block_reader(f)
            except (ValueError, EOFError, OSError) as e:
                raise ArchiveError(f"{path}: not an Avro container file (damaged header at byte 0): {e}") from None
            position = f.tell()
            for block in blocks:
                position, block_first = block.offset, index
                for rec in block:
                    r = cast(dict[str, Any], rec)  # an ArchivedMessage record (the archive's schema)
                    yield SourceMessage(r["topic"], r["partition"], r["offset"], r["key"], r["value"],
                                        r["timestamp_ms"])
                    index += 1
                position = f.tell()
    except ArchiveError:
        raise
    except FileNotFoundError:
        raise ArchiveError(f"{path}: segment file is missing") from None
    except Exception as e:  # fastavro raises EOFError, ValueError, zlib.error, ... for damaged blocks
        detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise ArchiveError(f"{path}: damaged at byte {position} (the block of records from #{block_first} "
                           f"starting there does not decode): {detail}") from None
    if segment is not None and index != segment.records:
        raise ArchiveError(f"{path}: holds {index} records, the archive index says {segment.records} "
                           f"(damaged or replaced after recording)")


def _readable_prefix(path: Path) -> tuple[int, int]:
    """(records readable from the start, byte where reading fails or ends) of a damaged segment."""
    count = 0
    position = 0
    try:
        with open(path, "rb") as f:
            blocks = fastavro.block_reader(f)
            position = f.tell()
            for block in blocks:
                position = block.offset
                count += sum(1 for _ in block)
                position = f.tell()
    except Exception:  # any decode failure ends the readable prefix
        pass
    return count, position
