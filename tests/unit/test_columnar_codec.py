"""The columnar codec, derived from any flat Avro record schema, reads and writes exactly what fastavro does.

Schemas and records are generated: primitives, enums and nullable unions in any mix. Reading is
stricter than fastavro only where the Avro specification is (over-long or overflowing varints,
boolean bytes other than 0/1, indices out of range), and those rows are errors naming the field.
"""

from __future__ import annotations

import io
import math
from typing import Any

import fastavro
import numpy as np
import pytest
from edml.schemas.columnar import FieldSpec, RecordCodec, UnsupportedSchema, flat_fields
from edml.schemas.serde import SINGLE_OBJECT_MAGIC, parse_writer_schema
from edml.schemas.wire import single_object_serdes
from edml.trainer.records import TripPickup, trip_serde
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edml.core.config import Settings
from edml.kafka.messages import SourceMessage
from edml.pipelines.bound import open_pipeline
from edml.pipelines.events import EventDecoder

HEADER = SINGLE_OBJECT_MAGIC + bytes(range(8))

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32),
    "double": st.floats(),
    "string": st.text(max_size=30),
    "bytes": st.binary(max_size=30),
}
_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@st.composite
def field_types(draw: st.DrawFn, index: int) -> Any:
    """One field's Avro type: a primitive (some with a logical type), an enum, or a nullable union."""
    kind = draw(st.sampled_from(["boolean", "int", "long", "float", "double", "string", "bytes", "enum", "null"]))
    if kind == "enum":
        symbols = draw(st.lists(_NAMES, min_size=1, max_size=6, unique=True))
        node: Any = {"type": "enum", "name": f"E{index}", "symbols": symbols}
    elif kind == "long" and draw(st.booleans()):
        node = {"type": "long", "logicalType": "timestamp-millis"}
    else:
        node = kind
    if kind != "null" and draw(st.booleans()):
        return ["null", node] if draw(st.booleans()) else [node, "null"]
    return node


@st.composite
def schemas(draw: st.DrawFn) -> dict[str, Any]:
    """A flat record schema of 1..8 generated fields."""
    names = draw(st.lists(_NAMES, min_size=1, max_size=8, unique=True))
    return {"type": "record", "name": "Generated", "namespace": "test.columnar",
            "fields": [{"name": name, "type": draw(field_types(i))} for i, name in enumerate(names)]}


def value_strategy(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Values fastavro writes for a field of ``spec``."""
    plain = st.sampled_from(spec.symbols) if spec.type == "enum" else _VALUES[spec.type]
    return st.none() | plain if spec.nullable else plain


@st.composite
def batches(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A generated schema and 1..30 records of it."""
    schema = draw(schemas())
    specs = flat_fields(schema)
    row = st.fixed_dictionaries({s.name: value_strategy(s) for s in specs})
    return schema, draw(st.lists(row, min_size=1, max_size=30))


def fastavro_bytes(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parse_writer_schema(schema), record)
    return buf.getvalue()


def fastavro_read(schema: dict[str, Any], body: bytes) -> dict[str, Any] | None:
    """What fastavro reads from ``body`` when it reads exactly all of it, else None."""
    buf = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(buf, parse_writer_schema(schema), None)
    except Exception:
        return None
    return record if buf.tell() == len(body) else None


def same_value(spec: FieldSpec, ours: Any, theirs: Any) -> bool:
    """Equal values; floats compared by their bits (-0.0 is not 0.0), any NaN equal to any NaN.

    A NaN's payload bits need not survive fastavro's float -> double conversion, so two NaNs count
    as the same value whatever their payloads.
    """
    if theirs is None or ours is None:
        return ours is None and theirs is None
    if spec.type in ("float", "double") and np.isnan(ours) and np.isnan(theirs):
        return True
    if spec.type == "float":
        return np.float32(ours).tobytes() == np.float32(theirs).tobytes()
    if spec.type == "double":
        return np.float64(ours).tobytes() == np.float64(theirs).tobytes()
    if spec.type in ("int", "long"):
        return int(ours) == theirs
    if spec.type == "boolean":
        return bool(ours) is theirs
    return bool(ours == theirs) and type(ours) is type(theirs)


def assert_columns_match(specs: list[FieldSpec], decoded: Any, records: list[dict[str, Any]]) -> None:
    for spec in specs:
        column = decoded.columns[spec.name]
        assert len(column) == len(records)
        for j, record in enumerate(records):
            if spec.nullable:
                assert bool(decoded.nulls[spec.name][j]) == (record[spec.name] is None)
                if record[spec.name] is None:  # numeric columns hold 0 there, object columns None
                    assert column[j] in (0, None)
                    continue
            assert same_value(spec, column[j], record[spec.name]), (spec, column[j], record[spec.name])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.booleans())
def test_reads_what_fastavro_wrote(batch: tuple[dict[str, Any], list[dict[str, Any]]], with_header: bool) -> None:
    schema, records = batch
    header = HEADER if with_header else b""
    payloads = [header + fastavro_bytes(schema, r) for r in records]
    codec = RecordCodec.from_schema(schema)
    decoded = codec.read(payloads, len(header))
    assert decoded.errors == []
    assert decoded.rows.tolist() == list(range(len(records)))
    expected = [fastavro_read(schema, p[len(header):]) for p in payloads]
    assert_columns_match(codec.fields, decoded, expected)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.data())
def test_writes_the_bytes_fastavro_writes(batch: tuple[dict[str, Any], list[dict[str, Any]]], data: st.DataObject
                                          ) -> None:
    schema, records = batch
    codec = RecordCodec.from_schema(schema)
    columns: dict[str, Any] = {}
    for spec in codec.fields:
        values = [r[spec.name] for r in records]
        shape = data.draw(st.sampled_from(["list", "array", "constant"]))
        if shape == "constant":  # one value for every record
            for r in records:
                r[spec.name] = values[0]
            columns[spec.name] = values[0]
        elif shape == "array" and spec.type in ("int", "long", "float", "double", "boolean") and None not in values:
            columns[spec.name] = np.array(values, dtype={"int": np.int64, "long": np.int64, "float": np.float32,
                                                         "double": np.float64, "boolean": bool}[spec.type])
        else:
            columns[spec.name] = values
    expected = [HEADER + fastavro_bytes(schema, r) for r in records]
    assert codec.write(columns, len(records), HEADER) == expected


def _row(decoded: Any, j: int) -> Any:
    """Row ``j`` of ``decoded`` as a one-row batch."""
    return type(decoded)(decoded.rows[j:j + 1], {k: v[j:j + 1] for k, v in decoded.columns.items()},
                         {k: v[j:j + 1] for k, v in decoded.nulls.items()})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["boolean", "int", "long", "float", "double"]), st.integers(0, 5), st.integers(1, 20),
       st.data())
def test_writes_vectors_the_way_fastavro_writes_arrays(items: str, k: int, n: int, data: st.DataObject) -> None:
    schema = {"type": "record", "name": "Scored", "fields": [
        {"name": "key", "type": "string"}, {"name": "vector", "type": {"type": "array", "items": items}},
        {"name": "score", "type": "double"}]}
    rows = [[data.draw(_VALUES[items]) for _ in range(k)] for _ in range(n)]
    dtype = {"boolean": bool, "int": np.int32, "long": np.int64, "float": np.float32, "double": np.float64}[items]
    codec = RecordCodec.from_schema(schema, arrays=True)
    columns = {"key": [f"k{i}" for i in range(n)], "vector": np.array(rows, dtype=dtype).reshape(n, k), "score": 0.5}
    expected = [fastavro_bytes(schema, {"key": f"k{i}", "vector": rows[i], "score": 0.5}) for i in range(n)]
    assert codec.write(columns, n) == expected
    with pytest.raises(UnsupportedSchema, match="field vector: arrays are written column-wise, not read"):
        codec.read(expected)
    assert codec.write({**columns, "vector": rows[0]}, n)[0] == expected[0]  # one vector for every record


def mutate(payload: bytes, data: st.DataObject) -> bytes:
    """Truncate, extend, or overwrite a byte of ``payload``."""
    how = data.draw(st.sampled_from(["truncate", "append", "flip", "set", "keep"]))
    if how == "truncate":
        return payload[: data.draw(st.integers(0, max(0, len(payload) - 1)))]
    if how == "append":
        return payload + data.draw(st.binary(min_size=1, max_size=3))
    if how == "keep" or not payload:
        return payload
    at = data.draw(st.integers(0, len(payload) - 1))
    new = data.draw(st.integers(0, 255)) if how == "set" else payload[at] ^ (1 << data.draw(st.integers(0, 7)))
    return payload[:at] + bytes([new]) + payload[at + 1:]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.data())
def test_damaged_payloads_are_errors_and_never_shift_others(batch: tuple[dict[str, Any], list[dict[str, Any]]],
                                                            data: st.DataObject) -> None:
    schema, records = batch
    codec = RecordCodec.from_schema(schema)
    payloads = [mutate(fastavro_bytes(schema, r), data) for r in records]
    decoded = codec.read(payloads)
    errors = {e.index: e for e in decoded.errors}
    assert sorted(set(decoded.rows.tolist()) | set(errors)) == list(range(len(payloads)))
    assert not set(decoded.rows.tolist()) & set(errors)
    for j, i in enumerate(decoded.rows.tolist()):
        theirs = fastavro_read(schema, payloads[i])
        assert theirs is not None, f"read a payload fastavro cannot read: {payloads[i].hex()}"
        assert_columns_match(codec.fields, _row(decoded, j), [theirs])  # type: ignore[arg-type]
    for i, error in errors.items():
        assert error.kind in ("truncated", "trailing-bytes", "bad-utf8", "malformed")
        if fastavro_read(schema, payloads[i]) is not None:
            # fastavro read it: only a breach of the specification it does not check may refuse it
            assert error.kind == "malformed", error


# --- strictness: what the Avro specification forbids and fastavro reads anyway ---------------

SENSOR = {"type": "record", "name": "Reading", "fields": [
    {"name": "count", "type": "int"},
    {"name": "at", "type": "long"},
    {"name": "ok", "type": "boolean"},
    {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["low", "high"]}},
    {"name": "note", "type": ["null", "string"]},
]}
GOOD_BODY = fastavro_bytes(SENSOR, {"count": 3, "at": 5, "ok": True, "level": "high", "note": "x"})


@pytest.mark.parametrize(("body", "field", "says"), [
    (b"\xff" * 5 + b"\x01" + GOOD_BODY[1:], "count", "longer than 5 bytes"),
    (b"\xff\xff\xff\xff\x1f" + GOOD_BODY[1:], "count", "overflows an Avro int"),
    (GOOD_BODY[:1] + b"\xff" * 10 + b"\x01" + GOOD_BODY[2:], "at", "longer than 10 bytes"),
    (GOOD_BODY[:1] + b"\xff" * 9 + b"\x03" + GOOD_BODY[2:], "at", "overflows an Avro long"),
    (GOOD_BODY[:2] + b"\x02" + GOOD_BODY[3:], "ok", "neither 0 nor 1"),
    (GOOD_BODY[:3] + b"\x01" + GOOD_BODY[4:], "level", "enum index -1"),
    (GOOD_BODY[:3] + b"\x04" + GOOD_BODY[4:], "level", "enum index 2"),
    (GOOD_BODY[:4] + b"\x04" + GOOD_BODY[5:], "note", "union branch 2"),
    (GOOD_BODY[:5] + b"\x01" + GOOD_BODY[6:], "note", "negative length"),
])
def test_breaches_of_the_specification_are_malformed(body: bytes, field: str, says: str) -> None:
    decoded = RecordCodec.from_schema(SENSOR).read([GOOD_BODY, body, GOOD_BODY])
    assert decoded.rows.tolist() == [0, 2]
    [error] = decoded.errors
    assert (error.index, error.kind) == (1, "malformed")
    assert error.message.startswith(f"{field}: ") and says in error.message


def test_non_minimal_varints_are_read_like_fastavro() -> None:
    body = b"\x86\x00" + GOOD_BODY[1:]  # count 3 in two bytes: allowed, Java and fastavro read it
    decoded = RecordCodec.from_schema(SENSOR).read([body])
    assert decoded.errors == [] and decoded.columns["count"].tolist() == [3]
    assert fastavro_read(SENSOR, body)["count"] == 3  # type: ignore[index]


def test_extreme_values_round_trip() -> None:
    codec = RecordCodec.from_schema(SENSOR)
    columns = {"count": [-(2**31), 2**31 - 1], "at": np.array([-(2**63), 2**63 - 1]), "ok": [False, True],
               "level": ["low", "high"], "note": [None, "ü" * 200]}
    bodies = codec.write(columns, 2)
    assert bodies == [fastavro_bytes(SENSOR, {k: v[i] for k, v in columns.items()}) for i in range(2)]
    decoded = codec.read(bodies)
    assert decoded.columns["at"].tolist() == [-(2**63), 2**63 - 1]
    assert decoded.columns["count"].dtype == np.int32 and decoded.columns["count"].tolist() == [-(2**31), 2**31 - 1]
    assert decoded.columns["note"].tolist() == [None, "ü" * 200]
    assert decoded.nulls["note"].tolist() == [True, False]


def test_errors_name_the_field_and_the_reason() -> None:
    codec = RecordCodec.from_schema(SENSOR)
    bad_utf8 = GOOD_BODY[:-1] + b"\xff"
    decoded = codec.read([GOOD_BODY[:3], GOOD_BODY + b"\x00", bad_utf8, GOOD_BODY])
    assert [(e.index, e.kind) for e in decoded.errors] == [(0, "truncated"), (1, "trailing-bytes"), (2, "bad-utf8")]
    assert decoded.errors[1].message == "1 bytes after the record"
    assert decoded.errors[2].message.startswith("note: not UTF-8")
    assert decoded.rows.tolist() == [3]
    assert codec.read([]).columns["count"].dtype == np.int32


def test_an_empty_payload_beside_a_long_varint_is_truncated() -> None:
    codec = RecordCodec.from_schema({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})
    decoded = codec.read([b"\x80", b"", b"\x80\x01"])  # 64 cut short, nothing, 64
    assert [(e.index, e.kind) for e in decoded.errors] == [(0, "truncated"), (1, "truncated")]
    assert decoded.rows.tolist() == [2] and decoded.columns["a"].tolist() == [64]


def test_a_string_length_near_the_largest_long_is_truncated_not_a_crash() -> None:
    codec = RecordCodec.from_schema({"type": "record", "name": "R", "fields": [
        {"name": "s", "type": "string"}, {"name": "n", "type": "int"}]})
    huge = b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"  # zigzag of 2**63 - 1: pos + length would overflow
    decoded = codec.read([huge + b"abc\x02", b"\x06abc\x02"])
    assert [(e.index, e.kind) for e in decoded.errors] == [(0, "truncated")]
    assert decoded.rows.tolist() == [1] and decoded.columns["n"].tolist() == [1]


def test_schemas_that_are_not_flat_are_refused_naming_the_field() -> None:
    nested = {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": "int"}, {"name": "tags", "type": {"type": "array", "items": "string"}}]}
    with pytest.raises(UnsupportedSchema, match="field tags"):
        RecordCodec.from_schema(nested)
    union = {"type": "record", "name": "R", "fields": [{"name": "u", "type": ["int", "string"]}]}
    with pytest.raises(UnsupportedSchema, match="field u"):
        flat_fields(union)


def test_trip_decoder_dead_letters_an_overlong_varint() -> None:
    serde = trip_serde()
    trip = TripPickup("t-1", 1_704_067_200_000, 132, 48, "Queens", 2, 17.25)
    good = serde.encode(trip)
    id_end = 10 + 1 + len(trip.trip_id)
    time_len = next(k for k in range(10) if good[id_end + k] < 0x80) + 1
    # pickup_time padded to 11 bytes: fastavro reads a value, the specification allows 10 at most
    padded = bytearray(good[id_end:id_end + time_len])
    padded[-1] |= 0x80
    overlong = good[:id_end] + bytes(padded) + b"\x80" * (10 - time_len) + b"\x00" + good[id_end + time_len:]
    assert math.isfinite(serde.decode(overlong).pickup_time)  # the lenient reader wraps it
    messages = [SourceMessage("trips", 0, i, b"k", v, 1) for i, v in enumerate([good, overlong, good])]
    taxi = open_pipeline(None, Settings())
    batch = EventDecoder(taxi, single_object_serdes().for_schema("trips", taxi.schema)).decode_batch(messages)
    assert len(batch) == 2
    [letter] = batch.dead_letters
    assert (letter.offset, letter.error_kind) == (1, "malformed")
    assert letter.message.startswith("pickup_time: a varint longer than 10 bytes")
