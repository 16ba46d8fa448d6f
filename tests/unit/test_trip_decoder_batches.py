"""The batch decoder gives exactly what decoding and checking each message on its own gives."""

from __future__ import annotations

import dataclasses
import random
import re

import numpy as np
from edml.schemas.columnar import RecordCodec
from edml.schemas.records import TripPickup
from edml.schemas.serde import DecodeError, trip_serde
from edml.schemas.validation import SourceMessage, TripBatch, TripDecoder, check_trip
from hypothesis import given, settings
from hypothesis import strategies as st

GOOD = TripPickup("7d0c2f36-5b8e-4c59-a0f5-2f1b9f7a1c11", 1_704_067_200_000, 132, 48, "Queens", 2, 17.25)


def _no_address(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x..", text)  # fastavro names the BytesIO it read from


def reference(messages: list[SourceMessage]) -> tuple[list[TripPickup], list[int], list[tuple]]:
    """One message at a time, the way the decoder's contract reads."""
    serde = trip_serde()
    strict = RecordCodec.from_schema(serde.schema_json)
    trips, stamps, dead = [], [], []
    for m in messages:
        try:
            trip = serde.decode(m.value)
        except DecodeError as e:
            dead.append((m.offset, e.kind, _no_address(e.message)))
            continue
        # what fastavro reads but the Avro specification forbids (an over-long varint) is malformed
        breach = [e for e in strict.read([m.value], 10).errors if e.strict_only]
        if breach:
            dead.append((m.offset, breach[0].kind, breach[0].message))
            continue
        reason = check_trip(trip)
        if reason is not None:
            dead.append((m.offset, "out-of-range", reason))
            continue
        trips.append(trip)
        stamps.append(m.timestamp_ms)
    return trips, stamps, dead


def variants(rng: random.Random, i: int) -> bytes | None:
    """A payload: mostly good trips, some out of range, some damaged in assorted ways."""
    serde = trip_serde()
    trip = dataclasses.replace(GOOD, trip_id=f"trip-{i}", pickup_zone=rng.randint(1, 265),
                               trip_distance_km=rng.uniform(0, 40), pickup_time=GOOD.pickup_time + i)
    kind = rng.randrange(16)
    if kind == 0:
        trip = dataclasses.replace(trip, pickup_zone=rng.choice([0, 266, -5, 2**31 - 1]))
    elif kind == 1:
        trip = dataclasses.replace(trip, trip_distance_km=rng.choice([float("nan"), float("inf"), -1.0, 251.0]))
    elif kind == 2:
        trip = dataclasses.replace(trip, pickup_borough=rng.choice(["Nowhere", "", "queens"]))
    elif kind == 3:
        trip = dataclasses.replace(trip, passenger_count=rng.choice([0, 7]), trip_id=rng.choice(["", "ü-trip"]))
    elif kind == 4:
        trip = dataclasses.replace(trip, pickup_time=rng.choice([0, 1_700_000_000, 2**62]))
    value = serde.encode(trip)
    if kind == 5:
        return value[: rng.randrange(len(value))]  # truncated
    if kind == 6:
        return value + b"\x00"  # trailing byte
    if kind == 7:
        return rng.choice([None, b"", b"\x00\x01", b"\xc3\x01" + bytes(8) + value[10:]])
    if kind == 8:
        return value[:10] + b"\x07\xff\xfe" + value[13:]  # not UTF-8 / a shifted string length
    if kind == 9:  # a non-minimal varint for the trip id's length: fastavro still reads it
        body = value[10:]
        return value[:10] + bytes([body[0] | 0x80, 0x00]) + body[1:]
    if kind == 10:
        flipped = bytearray(value)
        flipped[rng.randrange(10, len(value))] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    return value


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=0, max_value=300))
def test_batch_decoding_matches_one_by_one(seed: int, n: int) -> None:
    rng = random.Random(seed)
    messages = [SourceMessage("trips", 0, i, b"k", variants(rng, i), 1_000 + i) for i in range(n)]
    batch = TripDecoder().decode_batch(messages)
    trips, stamps, dead = reference(messages)
    assert batch.trips == trips
    assert batch.timestamps_ms == stamps
    assert len(batch) == len(trips)
    assert [(d.offset, d.error_kind, _no_address(d.message)) for d in batch.dead_letters] == dead
    assert [d.value for d in batch.dead_letters] == [messages[o].value for o, _, _ in dead]
    for column, name in ((batch.columns.pickup_zone, "pickup_zone"), (batch.columns.trip_distance_km,
                                                                       "trip_distance_km")):
        assert np.array_equal(column, np.array([getattr(t, name) for t in trips]))


def test_batch_built_from_records_has_columns() -> None:
    batch = TripBatch(trips=[GOOD], timestamps_ms=[5])
    assert batch.columns.trip_id == [GOOD.trip_id]
    assert batch.columns.to_trips() == [GOOD]
    assert len(TripBatch()) == 0
