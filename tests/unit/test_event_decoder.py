"""The batch decoder gives exactly what decoding and checking each message on its own gives."""

from __future__ import annotations

import math
import random
import re
from typing import Any

import numpy as np
from edml.schemas.columnar import RecordCodec
from edml.schemas.serde import DecodeError
from edml.schemas.wire import single_object_serdes
from hypothesis import given, settings
from hypothesis import strategies as st

from edml.core.config import Settings
from edml.kafka.messages import SourceMessage
from edml.pipelines.bound import open_pipeline
from edml.pipelines.constraints import Constraint
from edml.pipelines.events import EventDecoder

TAXI = open_pipeline(None, Settings())
SERDE = single_object_serdes().for_schema("trips", TAXI.schema)
GOOD: dict[str, Any] = {"trip_id": "7d0c2f36-5b8e-4c59-a0f5-2f1b9f7a1c11", "pickup_time": 1_704_067_200_000,
                        "pickup_zone": 132, "dropoff_zone": 48, "pickup_borough": "Queens", "passenger_count": 2,
                        "trip_distance_km": 17.25}


def _no_address(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x..", text)  # fastavro names the BytesIO it read from


def breaks(c: Constraint, value: Any) -> bool:
    """Whether one value breaks ``c``: the constraint's meaning, one value at a time."""
    if value is None:
        return c.required
    if c.range is not None and not (isinstance(value, float) and math.isnan(value)) \
            and not c.range[0] <= value <= c.range[1]:
        return True
    if c.range is not None and isinstance(value, float) and math.isnan(value):
        return True
    if c.allowed is not None and value not in c.allowed:
        return True
    length = len(value) if isinstance(value, str | bytes) else 0
    return (c.min_length is not None and length < c.min_length) or (c.max_length is not None and length > c.max_length)


def reference(messages: list[SourceMessage]) -> tuple[list[dict[str, Any]], list[int], list[tuple]]:
    """One message at a time: fastavro, the strict reading of the specification, then each constraint."""
    strict = RecordCodec.from_schema(TAXI.schema)
    records, stamps, dead = [], [], []
    for m in messages:
        try:
            record = SERDE.decode(m.value)
        except DecodeError as e:
            dead.append((m.offset, e.kind))
            continue
        # what fastavro reads but the Avro specification forbids (an over-long varint) is malformed
        breach = [e for e in strict.read([m.value], 10).errors if e.strict_only]
        if breach:
            dead.append((m.offset, breach[0].kind))
            continue
        broken = next((c for c in TAXI.pipeline.constraints if breaks(c, record[c.field])), None)
        if broken is not None:
            dead.append((m.offset, "out-of-range", broken.field))
            continue
        records.append(record)
        stamps.append(m.timestamp_ms)
    return records, stamps, dead


def variants(rng: random.Random, i: int) -> bytes | None:
    """A payload: mostly good trips, some out of range, some damaged in assorted ways."""
    trip = dict(GOOD, trip_id=f"trip-{i}", pickup_zone=rng.randint(1, 265), trip_distance_km=rng.uniform(0, 40),
                pickup_time=GOOD["pickup_time"] + i)
    kind = rng.randrange(16)
    if kind == 0:
        trip["pickup_zone"] = rng.choice([0, 266, -5, 2**31 - 1])
    elif kind == 1:
        trip["trip_distance_km"] = rng.choice([float("nan"), float("inf"), -1.0, 251.0])
    elif kind == 2:
        trip["pickup_borough"] = rng.choice(["Nowhere", "", "queens"])
    elif kind == 3:
        trip.update(passenger_count=rng.choice([0, 7]), trip_id=rng.choice(["", "ü-trip"]))
    elif kind == 4:
        trip["pickup_time"] = rng.choice([0, 1_700_000_000, 2**62])
    value = SERDE.encode(trip)
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
    messages = [SourceMessage("trips", 0, i, b"k%d" % i, variants(rng, i), 1_000 + i) for i in range(n)]
    batch = EventDecoder(TAXI, SERDE).decode_batch(messages)
    records, stamps, dead = reference(messages)
    assert len(batch) == len(records)
    assert batch.timestamps_ms.tolist() == stamps
    for name in GOOD:
        got, want = batch.columns[name].tolist(), [r[name] for r in records]
        assert got == want or np.allclose(got, want, equal_nan=True), name
    letters = [(d.offset, d.error_kind) for d in batch.dead_letters]
    assert letters == [d[:2] for d in dead]
    for letter, expected in zip(batch.dead_letters, dead, strict=True):
        if letter.error_kind == "out-of-range":  # the reason names the field the constraint is on
            assert letter.message.startswith(expected[2]), (letter.message, expected)
    assert [d.value for d in batch.dead_letters] == [messages[o[0]].value for o in dead]
    kept = [m for m in messages if m.offset not in {d[0] for d in dead}]
    assert batch.payloads == [m.value for m in kept] and batch.keys == [m.key for m in kept]
    assert batch.offsets == [m.offset for m in kept]


def test_an_older_writer_schema_is_read_with_the_rest() -> None:
    older = dict(TAXI.schema, fields=[f for f in TAXI.schema["fields"] if f["name"] != "passenger_count"]
                 + [{"name": "note", "type": "string"}])
    older_serde = single_object_serdes().for_schema("trips-old", older)
    reader = single_object_serdes().for_schema("trips", dict(TAXI.schema, fields=[
        dict(f, default=1) if f["name"] == "passenger_count" else f for f in TAXI.schema["fields"]]))
    reader.add_writer_schema(older)  # type: ignore[attr-defined]
    old = older_serde.encode({**{k: v for k, v in GOOD.items() if k != "passenger_count"}, "note": "x"})
    messages = [SourceMessage("trips", 0, 0, None, reader.encode(GOOD), 1),
                SourceMessage("trips", 0, 1, None, old, 2)]
    batch = EventDecoder(TAXI, reader).decode_batch(messages)
    assert not batch.dead_letters
    assert batch.columns["passenger_count"].tolist() == [2, 1]
    assert batch.payloads[1] == old, "a dead letter or re-send carries the bytes as they came"
