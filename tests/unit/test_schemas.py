"""Every schema parses, every record round-trips, and the bytes are standard Avro.

The single-object header is checked against an independent CRC-64-AVRO written here from the
Avro specification, and the body is read back by plain fastavro with the ``.avsc`` as is
(logical types included), as any third-party Avro reader would.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from edml.schemas import records, serde
from edml.schemas.records import ModelRecord, ModelSignature, TensorSpec
from edml.trainer.records import TripDropoff, TripPickup, trip_serde
from fastavro.schema import to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.records import record_type, serde_of

AVSC_FILES = sorted(serde.SCHEMA_DIR.glob("*.avsc"))
RECORD_SCHEMAS = ["TripPickup", "TripDropoff", "Prediction", "ModelRecord", "ModelStatus", "DeadLetter"]

# --- CRC-64-AVRO, straight from the Avro specification ("Schema Fingerprints") -------------
EMPTY64 = 0xC15D213AA4D7A795


def _fp_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY64 & -(fp & 1))
        table.append(fp)
    return table


FP_TABLE = _fp_table()


def crc64_avro(data: bytes) -> int:
    """The Rabin fingerprint the Avro spec calls CRC-64-AVRO."""
    fp = EMPTY64
    for byte in data:
        fp = (fp >> 8) ^ FP_TABLE[(fp ^ byte) & 0xFF]
    return fp


# --- sample records -------------------------------------------------------------------------
def trip() -> TripPickup:
    return TripPickup(
        trip_id="5f0c6a5e-2b8f-4c1e-9a37-1d1f1b6c2a10",
        pickup_time=1_700_000_000_123,
        pickup_zone=161,
        dropoff_zone=236,
        pickup_borough="Manhattan",
        passenger_count=2,
        trip_distance_km=3.25,
    )


def model_record(**changes: Any) -> ModelRecord:
    record = ModelRecord(
        model_name="trip-duration",
        version="20240101-abcdef0",
        artifact_uri="gs://bucket/models/trip-duration/20240101-abcdef0.tar.gz",
        sha256="ab" * 32,
        size_bytes=1_234_567,
        signature=ModelSignature(
            inputs=[
                TensorSpec("pickup_zone", "int64", [-1, 1]),
                TensorSpec("trip_distance_km", "float32", [-1, 1]),
            ],
            outputs=[TensorSpec("duration_s", "float32", [-1])],
        ),
        trained_at=1_704_067_200_000,
        artifact_format="savedmodel-tar-gz",
        metrics={"mae_s": 212.5, "rmse_s": 301.25},
        git_sha="abcdef0123456789",
        data_window_start=1_701_388_800_000,
        data_window_end=1_704_067_200_000,
        trainer_params={"epochs": "3", "batch_size": "1024"},
        challengers=["20231201-1234567"],
        published_at=1_704_070_000_000,
        signature_ed25519=bytes(range(64)),
    )
    return dataclasses.replace(record, **changes)


SAMPLES: dict[str, Any] = {
    "TripPickup": trip(),
    "TripDropoff": TripDropoff(trip_id="t-1", dropoff_time=1_700_000_900_000, duration_s=912.5),
    "Prediction": records.Prediction(
        trip_id="t-1",
        predicted_duration_s=845.75,
        model_name="trip-duration",
        model_version="20240101-abcdef0",
        event_time=1_700_000_000_123,
        scored_at=1_700_000_000_456,
        latency_ms=3.5,
        role="challenger",
    ),
    "ModelRecord": model_record(),
    "ModelStatus": records.ModelStatus(
        model_name="trip-duration",
        version="v2",
        status="rejected",
        process="host-1:4242",
        time=1_700_000_000_000,
        reason="sha256 mismatch",
    ),
    "DeadLetter": records.DeadLetter(
        source_topic="trips",
        partition=1,
        offset=42,
        key=b"t-1",
        value=b"\x00\xff garbage",
        error_kind="bad-magic",
        message="header 00ff is not Avro single-object c301",
        time=1_700_000_000_000,
    ),
}


# --- schemas --------------------------------------------------------------------------------
def test_every_record_has_a_schema_file() -> None:
    names = {p.stem for p in AVSC_FILES}
    assert set(RECORD_SCHEMAS) | {"ModelKey"} <= names


@pytest.mark.parametrize("path", AVSC_FILES, ids=lambda p: p.stem)
def test_every_avsc_parses_in_one_namespace(path: Path) -> None:
    schema = json.loads(path.read_text())
    parsed = fastavro.parse_schema(schema)
    assert parsed["name"] == f"dev.edml.{path.stem}"
    # the file name is the record name: serde_for and the history mechanism rely on it
    assert serde.full_name(schema) == f"dev.edml.{path.stem}"


# every .avsc with a dataclass of the same name, including records added by other packages
DATACLASS_SCHEMAS = [p.stem for p in AVSC_FILES if dataclasses.is_dataclass(record_type(p.stem))]


@pytest.mark.parametrize("name", DATACLASS_SCHEMAS)
def test_dataclass_fields_match_schema_fields(name: str) -> None:
    schema = serde.load_schema_json(name)
    assert {f.name for f in dataclasses.fields(record_type(name))} == {f["name"] for f in schema["fields"]}


@pytest.mark.parametrize("name", DATACLASS_SCHEMAS)
def test_fields_added_with_defaults_are_optional(name: str) -> None:
    """Every field with a dataclass default also has an Avro default: old writers stay readable."""
    schema_defaults = {f["name"] for f in serde.load_schema_json(name)["fields"] if "default" in f}
    for f in dataclasses.fields(record_type(name)):
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if has_default:
            assert f.name in schema_defaults, f"{name}.{f.name} has a Python default but no Avro default"


# --- round trips ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", RECORD_SCHEMAS)
def test_every_record_round_trips(name: str) -> None:
    s = serde_of(name)
    record = SAMPLES[name]
    payload = s.encode(record)
    back = s.decode(payload)
    assert back == record
    assert type(back) is type(record)


def test_model_record_round_trips_nested_signature_maps_and_bytes() -> None:
    s = serde.model_record_serde()
    back = s.decode(s.encode(model_record()))
    assert isinstance(back.signature, ModelSignature)
    assert all(isinstance(t, TensorSpec) for t in back.signature.inputs + back.signature.outputs)
    assert back.signature.inputs[0] == TensorSpec("pickup_zone", "int64", [-1, 1])
    assert back.metrics == {"mae_s": 212.5, "rmse_s": 301.25}
    assert back.trainer_params == {"epochs": "3", "batch_size": "1024"}
    assert back.signature_ed25519 == bytes(range(64))


def test_model_record_round_trips_with_optional_fields_absent() -> None:
    s = serde.model_record_serde()
    minimal = ModelRecord(
        model_name="m",
        version="1",
        artifact_uri="file:///tmp/a.tar.gz",
        sha256="00" * 32,
        size_bytes=0,
        signature=ModelSignature(inputs=[], outputs=[]),
        trained_at=0,
    )
    back = s.decode(s.encode(minimal))
    assert back == minimal
    assert back.data_window_start is None and back.data_window_end is None
    assert back.published_at is None and back.signature_ed25519 is None
    assert back.metrics == {} and back.trainer_params == {} and back.challengers == []


@dataclasses.dataclass
class Point:
    x: int
    label: str | None = None


@dataclasses.dataclass
class Shape:
    name: str
    points: list[Point]
    named: dict[str, Point]
    centre: Point | None = None


SHAPE_SCHEMA = {
    "type": "record", "name": "Shape", "namespace": "test", "fields": [
        {"name": "name", "type": "string"},
        {"name": "points", "type": {"type": "array", "items": {"type": "record", "name": "Point", "fields": [
            {"name": "x", "type": "int"}, {"name": "label", "type": ["null", "string"], "default": None}]}}},
        {"name": "named", "type": {"type": "map", "values": "Point"}},
        {"name": "centre", "type": ["null", "Point"], "default": None},
    ],
}


def test_nested_records_in_arrays_maps_and_unions_come_back_as_dataclasses() -> None:
    s = serde.AvroSerde(SHAPE_SCHEMA, Shape)
    shape = Shape("tri", [Point(1), Point(2, "b")], {"origin": Point(0, "o")}, centre=Point(1))
    back = s.decode(s.encode(shape))
    assert back == shape
    assert isinstance(back.points[1], Point) and isinstance(back.named["origin"], Point)
    assert isinstance(back.centre, Point)
    assert s.decode(s.encode(Shape("empty", [], {}))).centre is None


def test_model_key_is_the_utf8_model_name() -> None:
    assert serde.encode_model_key("trip-duration") == b"trip-duration"
    assert serde.encode_model_key("modèle") == "modèle".encode()


def test_model_key_schema_round_trips() -> None:
    @dataclasses.dataclass
    class ModelKey:
        model_name: str

    s = serde.AvroSerde(serde.load_schema_json("ModelKey"), ModelKey)
    assert s.decode(s.encode(ModelKey("trip-duration"))) == ModelKey("trip-duration")


finite = st.floats(allow_nan=False, allow_infinity=True)
millis = st.integers(min_value=-(2**63), max_value=2**63 - 1)
int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


@settings(max_examples=150, deadline=None)
@given(
    trip_id=st.text(),
    pickup_time=millis,
    pickup_zone=int32,
    dropoff_zone=int32,
    borough=st.text(),
    passengers=int32,
    distance=finite,
)
def test_any_trip_round_trips(
    trip_id: str, pickup_time: int, pickup_zone: int, dropoff_zone: int, borough: str, passengers: int, distance: float
) -> None:
    record = TripPickup(trip_id, pickup_time, pickup_zone, dropoff_zone, borough, passengers, distance)
    s = trip_serde()
    assert s.decode(s.encode(record)) == record


def test_nan_survives_bit_for_bit() -> None:
    s = trip_serde()
    record = dataclasses.replace(trip(), trip_distance_km=math.nan)
    back = s.decode(s.encode(record))
    assert math.isnan(back.trip_distance_km)
    assert s.encode(back) == s.encode(record)


tensor_specs = st.builds(TensorSpec, st.text(max_size=8), st.sampled_from(["float32", "int64", "string"]),
                         st.lists(st.integers(min_value=-1, max_value=4096), max_size=3))


@settings(max_examples=60, deadline=None)
@given(
    inputs=st.lists(tensor_specs, max_size=4),
    outputs=st.lists(tensor_specs, max_size=2),
    metrics=st.dictionaries(st.text(max_size=8), st.floats(allow_nan=False), max_size=4),
    params=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
    window=st.none() | millis,
    sig=st.none() | st.binary(max_size=64),
)
def test_any_model_record_round_trips(
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    metrics: dict[str, float],
    params: dict[str, str],
    window: int | None,
    sig: bytes | None,
) -> None:
    record = model_record(
        signature=ModelSignature(inputs, outputs),
        metrics=metrics,
        trainer_params=params,
        data_window_start=window,
        signature_ed25519=sig,
    )
    s = serde.model_record_serde()
    assert s.decode(s.encode(record)) == record


# --- the single-object header ---------------------------------------------------------------
@pytest.mark.parametrize("name", RECORD_SCHEMAS)
def test_header_is_marker_plus_crc64_avro_fingerprint_little_endian(name: str) -> None:
    schema = serde.load_schema_json(name)
    canonical = to_parsing_canonical_form(fastavro.parse_schema(schema))
    expected = crc64_avro(canonical.encode()).to_bytes(8, "little")

    payload = serde_of(name).encode(SAMPLES[name])
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == expected
    assert serde.schema_fingerprint(schema) == expected


def test_crc64_avro_of_the_spec_canonical_forms() -> None:
    """The canonical form drops doc, default, logicalType: the fingerprint ignores them."""
    schema = serde.load_schema_json("TripPickup")
    canonical = to_parsing_canonical_form(fastavro.parse_schema(schema))
    assert "doc" not in canonical and "logicalType" not in canonical
    assert canonical.startswith('{"name":"dev.edml.TripPickup","type":"record","fields":[')
    stripped = json.loads(json.dumps(schema).replace('"logicalType": "local-timestamp-millis"', '"x": 1'))
    assert serde.schema_fingerprint(stripped) == serde.schema_fingerprint(schema)


def test_distinct_schemas_have_distinct_fingerprints() -> None:
    fps = {serde.schema_fingerprint(serde.load_schema_json(n)) for n in RECORD_SCHEMAS + ["ModelKey"]}
    assert len(fps) == len(RECORD_SCHEMAS) + 1


# --- a third-party reader ---------------------------------------------------------------------
def _ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _local_ms(value: int) -> datetime:
    """A ``local-timestamp-millis`` as a reader shows it: the city's wall clock, no zone."""
    return _ms(value).replace(tzinfo=None)


def _timestamp_fields(name: str, logical_type: str) -> set[str]:
    return {f["name"] for f in serde.load_schema_json(name)["fields"]
            if f'"logicalType": "{logical_type}"' in json.dumps(f["type"])}


def _read_with_plain_fastavro(name: str, payload: bytes) -> dict[str, Any]:
    schema = fastavro.parse_schema(serde.load_schema_json(name))  # the .avsc as is, logical types on
    buf = io.BytesIO(payload[10:])
    value = fastavro.schemaless_reader(buf, schema)
    assert buf.tell() == len(payload) - 10
    return value


def test_plain_fastavro_reads_a_trip_with_logical_types() -> None:
    record = trip()
    value = _read_with_plain_fastavro("TripPickup", trip_serde().encode(record))
    assert value["pickup_time"] == _local_ms(record.pickup_time)
    assert {k: v for k, v in value.items() if k != "pickup_time"} == {
        k: v for k, v in dataclasses.asdict(record).items() if k != "pickup_time"
    }


@pytest.mark.parametrize("name", RECORD_SCHEMAS)
def test_plain_fastavro_reads_every_record(name: str) -> None:
    record = SAMPLES[name]
    value = _read_with_plain_fastavro(name, serde_of(name).encode(record))
    expected = dataclasses.asdict(record)
    instants = _timestamp_fields(name, "timestamp-millis")
    wall_clock = _timestamp_fields(name, "local-timestamp-millis")
    for field_name, want in expected.items():
        got = value[field_name]
        if field_name in instants and want is not None:
            assert got == _ms(want), field_name
        elif field_name in wall_clock and want is not None:
            assert got == _local_ms(want), field_name
        else:
            assert got == want, field_name


def test_our_reader_reads_what_plain_fastavro_writes() -> None:
    """The other direction: a third-party writer with logical types, our single-object reader."""
    record = SAMPLES["Prediction"]
    schema = serde.load_schema_json("Prediction")
    value = dataclasses.asdict(record) | {"event_time": _local_ms(record.event_time),
                                          "scored_at": _ms(record.scored_at)}
    buf = io.BytesIO()
    canonical = to_parsing_canonical_form(fastavro.parse_schema(schema))
    buf.write(b"\xc3\x01" + crc64_avro(canonical.encode()).to_bytes(8, "little"))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), value)
    assert serde.prediction_serde().decode(buf.getvalue()) == record


def test_crc64_avro_matches_the_avro_spec_test_vectors() -> None:
    """apache/avro share/test/data/schema-tests.txt: "int" and an empty record, as signed longs."""
    assert crc64_avro(b'"int"') == 8247732601305521295
    assert crc64_avro(b'{"name":"foo","type":"record","fields":[]}') == -4824392279771201922 % 2**64
    # the single-object header of "int", as the Ruby and Java implementations write it
    assert serde.schema_fingerprint({"type": "record", "name": "foo", "fields": []}) == (
        (-4824392279771201922 % 2**64).to_bytes(8, "little")
    )
    assert b"\xc3\x01" + crc64_avro(b'"int"').to_bytes(8, "little") == bytes.fromhex("c3018f5c393f1ad57572")


@pytest.mark.parametrize("path", AVSC_FILES, ids=lambda p: p.stem)
def test_every_schema_fingerprint_is_crc64_avro_little_endian(path: Path) -> None:
    schema = json.loads(path.read_text())
    canonical = to_parsing_canonical_form(fastavro.parse_schema(schema))
    assert serde.schema_fingerprint(schema) == crc64_avro(canonical.encode()).to_bytes(8, "little")
