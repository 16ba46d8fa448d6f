"""The two message records every stage passes on: what came in from a topic, what goes out to one.

They are plain slotted dataclasses, not frozen: one is built per event, and a frozen dataclass's
``__init__`` (``object.__setattr__`` per field) costs about 4x a plain one's on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SourceMessage:
    """Where an event came from and its raw bytes (a Kafka message or a replayed one)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(slots=True)
class OutgoingMessage:
    """One message to produce: topic, key, encoded value and, for predictions, headers.

    ``headers`` (None: none) carry the source position a prediction was scored from (see
    edml.scoring.reemission), which is what matches a re-emitted prediction to its first one.
    """

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] | None = None
