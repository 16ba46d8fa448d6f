"""Decode a batch of a pipeline's events into columns; bad events become dead letters.

Payloads written with the topic's own schema are read column by column with the codec derived
from the pipeline's schema (:class:`~edml.schemas.columnar.RecordCodec`); any other payload (an
older writer schema, another registry id) is decoded on its own, resolved to the pipeline's
schema and read with the rest. Then the pipeline's declared constraints are checked on the
columns: a row that breaks one is a dead letter (``out-of-range``) whose reason names the field,
and the rest of the batch goes on. Constraints inferred from a model's reference are checked per
model, by the scorer.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import fastavro
import numpy as np

from edml.kafka.messages import SourceMessage
from edml.pipelines.bound import BoundPipeline
from edml.pipelines.constraints import check_columns, violated_fields
from edml.schemas.records import DeadLetter
from edml.schemas.serde import DecodeError, parse_writer_schema
from edml.schemas.wire import RecordSerde


@dataclass(slots=True)
class EventBatch:
    """The valid events of one source batch as columns (source order), and the dead letters."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    nulls: dict[str, np.ndarray] = field(default_factory=dict)
    timestamps_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    offsets: list[int] = field(default_factory=list)
    payloads: list[bytes | None] = field(default_factory=list)  # each valid event's source bytes
    keys: list[bytes | None] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # (topic, partition, offset) of the source batch's last message
    last_message: tuple[str, int, int] | None = None
    # a pipeline with fallbacks keeps rows that break a declared constraint: row -> the reason, and
    # field -> which rows break it, so the scorer can give them to a fallback that does not read the field
    violations: dict[int, str] = field(default_factory=dict)
    violated: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets)

    def __repr__(self) -> str:
        return f"EventBatch({len(self)} events, {len(self.dead_letters)} dead letters)"


def dead_letter(msg: SourceMessage, kind: str, message: str) -> DeadLetter:
    """A dead letter for ``msg`` with the reason."""
    return DeadLetter(source_topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
                      value=msg.value, error_kind=kind, message=message, time=int(time.time() * 1000))



class EventDecoder:
    """Turns a batch of source messages into an :class:`EventBatch` for one pipeline."""

    def __init__(self, bound: BoundPipeline, serde: RecordSerde[dict[str, Any]]) -> None:
        self.bound = bound
        self.serde = serde
        self.constraints = bound.declared_constraints
        # with fallbacks, a row breaking a declared constraint may still be scored by a fallback
        self.keep_invalid = bool(bound.pipeline.fallbacks)
        # bodies are written as the codec reads them: logical types as their underlying type
        self._body_schema = parse_writer_schema(bound.schema)

    def decode_batch(self, messages: Sequence[SourceMessage]) -> EventBatch:
        """Decode and check every message; never raises for bad data."""
        batch = self._decode(messages)
        if messages:
            last = messages[-1]
            batch.last_message = (last.topic, last.partition, last.offset)
        return batch

    def _bodies(self, messages: Sequence[SourceMessage]) -> tuple[list[bytes], int, dict[int, DeadLetter]]:
        """Every payload's Avro body in the pipeline's schema, the header length, and the payloads that failed."""
        header = self.serde.own_header()
        payloads = [m.value for m in messages]
        if header is not None and _all_start_with(payloads, header):
            # the common case: every event written with the topic's own schema
            return cast(list[bytes], payloads), len(header), {}
        bodies: list[bytes] = []
        failed: dict[int, DeadLetter] = {}
        for i, (msg, payload) in enumerate(zip(messages, payloads, strict=True)):
            if header is not None and isinstance(payload, bytes) and payload[:len(header)] == header:
                bodies.append(payload[len(header):])
                continue
            try:  # another writer schema, or not Avro at all: decode alone, resolved to the pipeline's schema
                record = self.serde.decode(payload)
                buf = io.BytesIO()
                fastavro.schemaless_writer(buf, self._body_schema, record)
                bodies.append(buf.getvalue())
            except DecodeError as e:
                failed[i] = dead_letter(msg, e.kind, e.message)
                bodies.append(b"")
            except Exception as e:  # noqa: BLE001 - a record fastavro cannot write back is this event's problem
                failed[i] = dead_letter(msg, "schema-mismatch", f"{type(e).__name__}: {e}")
                bodies.append(b"")
        return bodies, 0, failed

    def _decode(self, messages: Sequence[SourceMessage]) -> EventBatch:
        bodies, offset, failed = self._bodies(messages)
        read = self.bound.codec.read(bodies, offset)
        letters = dict(failed)
        for error in read.errors:
            if error.index not in letters:
                letters[error.index] = self._unread(messages[error.index], error.kind, error.message)
        rows = read.rows
        if failed:
            keep = ~np.isin(rows, np.fromiter(failed, dtype=np.int64, count=len(failed)))
            rows = rows[keep]
            columns = {k: v[keep] for k, v in read.columns.items()}
            nulls = {k: v[keep] for k, v in read.nulls.items()}
        else:
            columns, nulls = read.columns, read.nulls
        kept_violations: dict[int, str] = {}
        violated: dict[str, np.ndarray] = {}
        if self.constraints and len(rows) and self.keep_invalid:
            violations = check_columns(columns, nulls, self.constraints, len(rows))
            if violations.reasons:
                kept_violations = violations.reasons
                violated = violated_fields(columns, nulls, self.constraints, len(rows))
        elif self.constraints and len(rows):
            violations = check_columns(columns, nulls, self.constraints, len(rows))
            for i, reason in violations.reasons.items():
                index = int(rows[i])
                letters[index] = dead_letter(messages[index], "out-of-range", reason)
            if not violations.ok.all():
                ok = violations.ok
                rows = rows[ok]
                columns = {k: v[ok] for k, v in columns.items()}
                nulls = {k: v[ok] for k, v in nulls.items()}
        kept = messages if len(rows) == len(messages) else [messages[i] for i in rows.tolist()]
        return EventBatch(
            columns=columns, nulls=nulls,
            timestamps_ms=np.fromiter((m.timestamp_ms for m in kept), dtype=np.int64, count=len(kept)),
            offsets=[m.offset for m in kept], payloads=[m.value for m in kept], keys=[m.key for m in kept],
            dead_letters=[letters[i] for i in sorted(letters)], violations=kept_violations, violated=violated,
        )


    def _unread(self, msg: SourceMessage, kind: str, message: str) -> DeadLetter:
        # the reason decoding this message alone gives (fastavro's), so that a dead letter does not
        # depend on the batch it came in; what only the strict reading refuses keeps the codec's reason
        try:
            self.serde.decode(msg.value)
        except DecodeError as e:
            return dead_letter(msg, e.kind, e.message)
        return dead_letter(msg, kind, message)


def _all_start_with(payloads: list[Any], header: bytes) -> bool:
    try:
        return all(p.startswith(header) for p in payloads)
    except AttributeError:  # a null value (or not bytes): the per-message path says what it is
        return False
