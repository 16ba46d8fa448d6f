"""Decode and validate trips in batches: good trips become columns, bad ones dead letters.

Range checks run before the model so that one bad value never reaches TensorFlow (an
out-of-range zone id raises inside an embedding lookup and would fail the whole batch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from edml.schemas.columnar import ColumnarReader, columnar_reader
from edml.schemas.records import DeadLetter, TripPickup
from edml.schemas.serde import DecodeError, trip_serde
from edml.schemas.wire import RecordSerde

from edml.kafka.messages import SourceMessage

ZONE_IDS = range(1, 266)  # NYC TLC taxi zones 1..265 (1 = EWR)
BOROUGHS = frozenset({"Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR"})
PASSENGERS = range(1, 7)
# a UUID is 36; the id is the key of every prediction, so an unbounded one is refused here
# rather than by the broker when its prediction is produced
MAX_TRIP_ID_CHARS = 64
MAX_DISTANCE_KM = 250.0  # farther than any trip inside the five boroughs and EWR
# 2000-01-01 .. 2100-01-01: anything outside is a unit mistake (seconds vs millis) or garbage
PICKUP_TIME_RANGE_MS = (946_684_800_000, 4_102_444_800_000)


@dataclass(slots=True)
class TripColumns:
    """Valid trips as columns (one entry per trip, in source order): what the model and the encoder read."""

    trip_id: list[str]
    pickup_time: np.ndarray  # int64 epoch millis
    pickup_zone: np.ndarray  # int64
    dropoff_zone: np.ndarray  # int64
    pickup_borough: list[str]
    passenger_count: np.ndarray  # int64
    trip_distance_km: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.trip_id)

    @classmethod
    def from_trips(cls, trips: list[TripPickup]) -> TripColumns:
        """Columns of ``trips``."""
        n = len(trips)
        return cls(
            trip_id=[t.trip_id for t in trips],
            pickup_time=np.fromiter((t.pickup_time for t in trips), dtype=np.int64, count=n),
            pickup_zone=np.fromiter((t.pickup_zone for t in trips), dtype=np.int64, count=n),
            dropoff_zone=np.fromiter((t.dropoff_zone for t in trips), dtype=np.int64, count=n),
            pickup_borough=[t.pickup_borough for t in trips],
            passenger_count=np.fromiter((t.passenger_count for t in trips), dtype=np.int64, count=n),
            trip_distance_km=np.fromiter((t.trip_distance_km for t in trips), dtype=np.float64, count=n),
        )

    def as_dict(self) -> dict[str, Any]:
        """Field name -> column, for the model's signature-driven inputs."""
        return {name: getattr(self, name) for name in _TRIP_FIELDS}

    def to_trips(self) -> list[TripPickup]:
        """The trips as records."""
        return [TripPickup(*row) for row in zip(self.trip_id, self.pickup_time.tolist(), self.pickup_zone.tolist(),
                                                self.dropoff_zone.tolist(), self.pickup_borough,
                                                self.passenger_count.tolist(), self.trip_distance_km.tolist(),
                                                strict=True)]


_TRIP_FIELDS = tuple(f.name for f in fields(TripPickup))


class TripBatch:
    """The valid trips of one source batch, with their Kafka timestamps, and the dead letters.

    The trips are held as records (``trips``) or as columns (``columns``), whichever the batch
    was built from; the other view is built on first use.
    """

    __slots__ = ("_trips", "_columns", "timestamps_ms", "dead_letters", "last_message", "offsets")

    def __init__(self, trips: list[TripPickup] | None = None, timestamps_ms: list[int] | None = None,
                 dead_letters: list[DeadLetter] | None = None, columns: TripColumns | None = None,
                 offsets: list[int] | None = None) -> None:
        self._trips = trips if trips is not None or columns is not None else []
        self._columns = columns
        self.timestamps_ms: list[int] = timestamps_ms if timestamps_ms is not None else []
        self.dead_letters: list[DeadLetter] = dead_letters if dead_letters is not None else []
        # (topic, partition, offset) of the source batch's last message
        self.last_message: tuple[str, int, int] | None = None
        # each valid trip's source offset (in last_message's topic and partition): its source position
        self.offsets: list[int] = offsets if offsets is not None else []

    @property
    def trips(self) -> list[TripPickup]:
        """The valid trips as records."""
        if self._trips is None:
            assert self._columns is not None  # a batch is built from trips or from columns
            self._trips = self._columns.to_trips()
        return self._trips

    @property
    def columns(self) -> TripColumns:
        """The valid trips as columns."""
        if self._columns is None or (self._trips is not None and len(self._trips) != len(self._columns)):
            self._columns = TripColumns.from_trips(self.trips)
        return self._columns

    def __len__(self) -> int:
        return len(self._trips) if self._trips is not None else len(self.columns)

    def __repr__(self) -> str:
        return f"TripBatch({len(self)} trips, {len(self.dead_letters)} dead letters)"


def check_trip(trip: TripPickup) -> str | None:
    """The reason ``trip`` must not reach the model, or None when it is in range."""
    if not 0 < len(trip.trip_id) <= MAX_TRIP_ID_CHARS:
        return f"trip_id has {len(trip.trip_id)} characters, expected 1..{MAX_TRIP_ID_CHARS}"
    if trip.pickup_zone not in ZONE_IDS:
        return f"pickup_zone {trip.pickup_zone} is not a taxi zone (1..265)"
    if trip.dropoff_zone not in ZONE_IDS:
        return f"dropoff_zone {trip.dropoff_zone} is not a taxi zone (1..265)"
    if trip.passenger_count not in PASSENGERS:
        return f"passenger_count {trip.passenger_count} is out of range 1..6"
    d = trip.trip_distance_km
    if not math.isfinite(d):
        return f"trip_distance_km is {d}"
    if d < 0 or d > MAX_DISTANCE_KM:
        return f"trip_distance_km {d} is out of range 0..{MAX_DISTANCE_KM:.0f}"
    if trip.pickup_borough not in BOROUGHS:
        return f"pickup_borough {trip.pickup_borough!r} is not a borough"
    lo, hi = PICKUP_TIME_RANGE_MS
    if not lo <= trip.pickup_time <= hi:
        return f"pickup_time {trip.pickup_time} is not epoch millis between 2000 and 2100"
    return None


class TripDecoder:
    """Turns a batch of source messages into a :class:`TripBatch`."""

    def __init__(self, serde: RecordSerde[TripPickup] | None = None) -> None:
        self.serde: RecordSerde[TripPickup] = serde or trip_serde()
        self._header: bytes | None = None
        self._reader: ColumnarReader | None = None

    def dead_letter(self, msg: SourceMessage, kind: str, message: str) -> DeadLetter:
        """A dead letter for ``msg`` with the reason."""
        return DeadLetter(
            source_topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
            value=msg.value, error_kind=kind, message=message, time=int(time.time() * 1000),
        )

    def decode_batch(self, messages: list[SourceMessage]) -> TripBatch:
        """Decode and range-check every message; never raises for bad data.

        Payloads written with this serde's own schema are decoded and checked column by column
        (``schemas.columnar``); any payload that is not read there or fails a range check is
        decoded on its own, so its dead letter is exactly the one the per-record path gives.
        """
        batch = self._decode(messages)
        if messages:
            last = messages[-1]
            batch.last_message = (last.topic, last.partition, last.offset)
        return batch

    def _columnar_reader(self) -> ColumnarReader | None:
        # with a registry, the header of our own records is known once the schema id is
        header = self.serde.own_header()
        if header != self._header:
            self._header, self._reader = header, None if header is None else _trip_reader(self.serde, header)
        return self._reader

    def _decode(self, messages: list[SourceMessage]) -> TripBatch:
        reader = self._columnar_reader()
        read = None if reader is None else reader.read([m.value for m in messages])
        refused = read.refused if read is not None else {}
        if read is None or not len(read.rows):
            each = self._decode_each(messages, range(len(messages)), refused)
            return TripBatch(trips=each.trips, timestamps_ms=each.timestamps_ms, dead_letters=each.dead_letters,
                             offsets=[messages[i].offset for i in each.indices])
        c = read.columns
        distance = c["trip_distance_km"]
        lo, hi = PICKUP_TIME_RANGE_MS
        zone_lo, zone_hi = ZONE_IDS[0], ZONE_IDS[-1]
        id_chars = np.fromiter(map(len, c["trip_id"]), dtype=np.int64, count=len(read.rows))
        valid = ((id_chars > 0) & (id_chars <= MAX_TRIP_ID_CHARS)
                 & (c["pickup_zone"] >= zone_lo) & (c["pickup_zone"] <= zone_hi)
                 & (c["dropoff_zone"] >= zone_lo) & (c["dropoff_zone"] <= zone_hi)
                 & (c["passenger_count"] >= PASSENGERS[0]) & (c["passenger_count"] <= PASSENGERS[-1])
                 & np.isfinite(distance) & (distance >= 0) & (distance <= MAX_DISTANCE_KM)
                 & (c["pickup_time"] >= lo) & (c["pickup_time"] <= hi)
                 & np.fromiter((b in BOROUGHS for b in c["pickup_borough"]), dtype=bool, count=len(read.rows)))
        fast = read.rows[valid]
        if len(fast) == len(messages):  # the common case: every trip read and in range
            return TripBatch(columns=_select(c, valid), timestamps_ms=[m.timestamp_ms for m in messages],
                             offsets=[m.offset for m in messages])
        rest = np.ones(len(messages), dtype=bool)
        rest[fast] = False
        slow = self._decode_each(messages, np.flatnonzero(rest).tolist(), refused)
        if not slow.trips:
            kept = fast.tolist()
            return TripBatch(columns=_select(c, valid), timestamps_ms=[messages[i].timestamp_ms for i in kept],
                             dead_letters=slow.dead_letters, offsets=[messages[i].offset for i in kept])
        # trips from both paths: back in source order
        trips = dict(zip(fast.tolist(), _select(c, valid).to_trips(), strict=True))
        trips.update(zip(slow.indices, slow.trips, strict=True))
        order = sorted(trips)
        return TripBatch(trips=[trips[i] for i in order], timestamps_ms=[messages[i].timestamp_ms for i in order],
                         dead_letters=slow.dead_letters, offsets=[messages[i].offset for i in order])

    def _decode_each(self, messages: list[SourceMessage], indices: Iterable[int],
                     refused: dict[int, tuple[str, str]]) -> _Decoded:
        """The per-record path: decode, range-check, dead-letter with the reason.

        ``refused``: payloads the column reader found breaking the Avro specification where
        fastavro reads a wrapped value (an over-long varint); unless fastavro fails on them
        anyway, they are dead letters with the column reader's reason.
        """
        out = _Decoded()
        decode = self.serde.decode
        for i in indices:
            msg = messages[i]
            try:
                trip = decode(msg.value)
            except DecodeError as e:
                out.dead_letters.append(self.dead_letter(msg, e.kind, e.message))
                continue
            if i in refused:
                out.dead_letters.append(self.dead_letter(msg, *refused[i]))
                continue
            reason = check_trip(trip)
            if reason is not None:
                out.dead_letters.append(self.dead_letter(msg, "out-of-range", reason))
                continue
            out.trips.append(trip)
            out.indices.append(i)
            out.timestamps_ms.append(msg.timestamp_ms)
        return out


@dataclass(slots=True)
class _Decoded:
    trips: list[TripPickup] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def _trip_reader(serde: RecordSerde[TripPickup], header: bytes) -> ColumnarReader | None:
    """The column-wise reader of payloads written with ``serde``'s own schema, when its fields are TripPickup's."""
    reader = columnar_reader(serde.schema_json, header)
    if reader is None or tuple(name for name, _ in reader.fields) != _TRIP_FIELDS:
        return None
    return reader


def _select(columns: dict[str, Any], keep: np.ndarray) -> TripColumns:
    """The rows ``keep`` (a mask) of the reader's columns."""
    out: dict[str, Any] = {}
    for name in _TRIP_FIELDS:
        values = columns[name]
        out[name] = values[keep] if isinstance(values, np.ndarray) else [v for v, k in zip(values, keep.tolist(),
                                                                                           strict=True) if k]
    return TripColumns(**out)
