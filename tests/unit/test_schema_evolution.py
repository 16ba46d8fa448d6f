"""Schema evolution both ways: an added optional field keeps old and new readers working.

Fixture ``tests/fixtures/schemas/TripPickup.v2.avsc`` is TripPickup v1 (``schemas/avro``) plus
``vendor_id: ["null", "int"] = null`` and ``payment_type: string = "card"``.

* backward compatibility: a v2 reader reads v1 payloads, the defaults filled in;
* forward compatibility: a v1 reader reads v2 payloads, the new fields ignored.

A reader knows which schema wrote a message by the single-object fingerprint and resolves that
writer schema to its own; ``schemas/avro/history/<Name>.v<N>.avsc`` is how production serdes
learn older versions.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import pytest
from edml.schemas import records, serde
from edml.schemas.serde import AvroSerde, DecodeError
from edml.trainer.records import TripPickup, trip_serde

from tests.helpers.records import record_type, serde_of
from tests.unit.test_schemas import trip

FIXTURES = Path(__file__).parent.parent / "fixtures" / "schemas"
V1 = serde.load_schema_json("TripPickup")
V2 = json.loads((FIXTURES / "TripPickup.v2.avsc").read_text())


@dataclass(slots=True)
class TripPickupV2:
    """The dataclass a v2 reader would have."""

    trip_id: str
    pickup_time: int
    pickup_zone: int
    dropoff_zone: int
    pickup_borough: str
    passenger_count: int
    trip_distance_km: float
    vendor_id: int | None = None
    payment_type: str = "card"


def trip_v2(**changes: object) -> TripPickupV2:
    return dataclasses.replace(TripPickupV2(**dataclasses.asdict(trip()), vendor_id=7, payment_type="cash"), **changes)


def test_fixture_is_v1_plus_optional_fields() -> None:
    v1_fields = [f["name"] for f in V1["fields"]]
    v2_fields = [f["name"] for f in V2["fields"]]
    assert v2_fields[: len(v1_fields)] == v1_fields
    added = [f for f in V2["fields"] if f["name"] not in v1_fields]
    assert [f["name"] for f in added] == ["vendor_id", "payment_type"]
    assert all("default" in f for f in added)
    assert serde.schema_fingerprint(V1) != serde.schema_fingerprint(V2)


def test_backward_new_reader_reads_old_writer_with_defaults() -> None:
    v1_payload = trip_serde().encode(trip())
    v2_reader = AvroSerde(V2, TripPickupV2, writer_schemas=[V1])
    got = v2_reader.decode(v1_payload)
    assert got == TripPickupV2(**dataclasses.asdict(trip()), vendor_id=None, payment_type="card")


def test_forward_old_reader_reads_new_writer_ignoring_new_fields() -> None:
    v2_payload = AvroSerde(V2, TripPickupV2).encode(trip_v2())
    v1_reader = AvroSerde(V1, TripPickup, writer_schemas=[V2])
    assert v1_reader.decode(v2_payload) == trip()


def test_each_version_still_reads_its_own_payloads() -> None:
    v1_reader = AvroSerde(V1, TripPickup, writer_schemas=[V2])
    v2_reader = AvroSerde(V2, TripPickupV2, writer_schemas=[V1])
    assert v1_reader.decode(v1_reader.encode(trip())) == trip()
    assert v2_reader.decode(v2_reader.encode(trip_v2())) == trip_v2()


def test_payloads_name_their_writer_by_fingerprint() -> None:
    v1_payload = trip_serde().encode(trip())
    v2_payload = AvroSerde(V2, TripPickupV2).encode(trip_v2())
    assert v1_payload[2:10] == serde.schema_fingerprint(V1)
    assert v2_payload[2:10] == serde.schema_fingerprint(V2)
    # the new fields are appended: a v2 body is a v1 body plus the two new values
    assert v2_payload[10:].startswith(v1_payload[10:])


def test_a_reader_that_does_not_know_the_writer_refuses_clearly() -> None:
    v2_payload = AvroSerde(V2, TripPickupV2).encode(trip_v2())
    with pytest.raises(DecodeError) as info:
        AvroSerde(V1, TripPickup).decode(v2_payload)
    assert info.value.kind == "unknown-fingerprint"
    with pytest.raises(DecodeError) as info:
        AvroSerde(V2, TripPickupV2).decode(trip_serde().encode(trip()))
    assert info.value.kind == "unknown-fingerprint"


def test_an_incompatible_writer_is_a_schema_mismatch_not_a_crash() -> None:
    """A 'history' schema that drops a field without default cannot resolve: typed error."""
    no_borough = dict(V1, fields=[f for f in V1["fields"] if f["name"] != "pickup_borough"])

    @dataclass
    class NoBorough:
        trip_id: str
        pickup_time: int
        pickup_zone: int
        dropoff_zone: int
        passenger_count: int
        trip_distance_km: float

    payload = AvroSerde(no_borough, NoBorough).encode(NoBorough("t", 1, 2, 3, 4, 5.0))
    with pytest.raises(DecodeError) as info:
        AvroSerde(V1, TripPickup, writer_schemas=[no_borough]).decode(payload)
    assert info.value.kind == "schema-mismatch"


def test_plain_fastavro_agrees_on_resolution_both_ways() -> None:
    """The Avro resolution rules, applied by a reader that is not ours, give the same records."""
    v1_body = trip_serde().encode_body(trip())
    v2_body = AvroSerde(V2, TripPickupV2).encode_body(trip_v2())
    old_as_new = fastavro.schemaless_reader(io.BytesIO(v1_body), fastavro.parse_schema(V1), fastavro.parse_schema(V2))
    new_as_old = fastavro.schemaless_reader(io.BytesIO(v2_body), fastavro.parse_schema(V2), fastavro.parse_schema(V1))
    assert old_as_new["vendor_id"] is None and old_as_new["payment_type"] == "card"
    assert set(new_as_old) == {f["name"] for f in V1["fields"]}


def fastavro_body(schema: dict[str, Any], value: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), value)
    return buf.getvalue()


# --- the history mechanism of the production serdes ------------------------------------------
def _schema_dir_with_v2_current(tmp_path: Path) -> Path:
    """A schema dir where TripPickup is at v2 and v1 is in its history."""
    (tmp_path / "history").mkdir()
    shutil.copy(FIXTURES / "TripPickup.v2.avsc", tmp_path / "TripPickup.avsc")
    shutil.copy(serde.SCHEMA_DIR / "TripPickup.avsc", tmp_path / "history" / "TripPickup.v1.avsc")
    return tmp_path


def test_history_dir_makes_an_upgraded_reader_read_old_producers(tmp_path: Path) -> None:
    schema_dir = _schema_dir_with_v2_current(tmp_path)
    upgraded = serde.build_serde("TripPickup", TripPickupV2, schema_dir=schema_dir)
    assert upgraded.fingerprint == serde.schema_fingerprint(V2)
    assert serde.schema_fingerprint(V1) in upgraded.writer_fingerprints
    got = upgraded.decode(trip_serde().encode(trip()))  # what today's producers write
    assert got.vendor_id is None and got.payment_type == "card"
    assert upgraded.decode(upgraded.encode(trip_v2())) == trip_v2()


def test_history_files_load_in_version_order_and_ignore_other_records(tmp_path: Path) -> None:
    schema_dir = _schema_dir_with_v2_current(tmp_path)
    v0 = dict(V1, fields=[f for f in V1["fields"] if f["name"] != "trip_distance_km"])
    (schema_dir / "history" / "TripPickup.v0.avsc").write_text(json.dumps(v0))
    (schema_dir / "history" / "TripDropoff.v1.avsc").write_text(json.dumps(serde.load_schema_json("TripDropoff")))
    (schema_dir / "history" / "TripPickup.v10.avsc").write_text(json.dumps(V1 | {"doc": "same as v1"}))
    (schema_dir / "history" / "README.txt").write_text("not a schema")
    history = serde.history_schemas("TripPickup", schema_dir)
    assert [len(h["fields"]) for h in history] == [6, 7, 7]  # v0, v1, v10: numeric order, not text order
    upgraded = serde.build_serde("TripPickup", TripPickupV2, schema_dir=schema_dir)
    assert len(upgraded.writer_fingerprints) == 3  # v2 itself, v0, v1 (v10 has v1's fingerprint)
    # v0 lacks trip_distance_km, which v2 needs and has no default for: a typed error per message
    header = serde.SINGLE_OBJECT_MAGIC + serde.schema_fingerprint(v0)
    body = fastavro_body(v0, {f["name"]: getattr(trip(), f["name"]) for f in v0["fields"]})
    with pytest.raises(DecodeError) as info:
        upgraded.decode(header + body)
    assert info.value.kind == "schema-mismatch"


def test_a_history_file_of_another_record_is_refused(tmp_path: Path) -> None:
    schema_dir = _schema_dir_with_v2_current(tmp_path)
    (schema_dir / "history" / "TripPickup.v0.avsc").write_text(json.dumps(serde.load_schema_json("TripDropoff")))
    with pytest.raises(serde.SchemaHistoryError, match="TripDropoff"):
        serde.build_serde("TripPickup", TripPickupV2, schema_dir=schema_dir)


def test_no_history_dir_means_current_schema_only(tmp_path: Path) -> None:
    shutil.copy(serde.SCHEMA_DIR / "TripPickup.avsc", tmp_path / "TripPickup.avsc")
    assert serde.history_schemas("TripPickup", tmp_path) == []
    alone = serde.build_serde("TripPickup", TripPickup, schema_dir=tmp_path)
    assert alone.writer_fingerprints == [serde.schema_fingerprint(V1)]


@pytest.mark.parametrize(
    "name", ["TripPickup", "TripDropoff", "Prediction", "ModelRecord", "ModelStatus", "DeadLetter"]
)
def test_production_serdes_know_their_whole_history(name: str) -> None:
    history = serde.history_schemas(name)
    expected = {serde.schema_fingerprint(serde.load_schema_json(name))} | {serde.schema_fingerprint(h) for h in history}
    assert set(serde_of(name).writer_fingerprints) == expected


# --- event times: New York wall clock under local-timestamp-millis ------------------------------
WALL_CLOCK_FIELDS = {
    "TripPickup": ["pickup_time"], "TripDropoff": ["dropoff_time"], "Prediction": ["event_time"],
    "Evaluation": ["event_time", "observed_time"], "ScoreWindow": ["window_start", "window_end"],
    "DriftAlert": ["window_start", "window_end"], "ModelRecord": ["data_window_start", "data_window_end"],
}


def _as_written_before(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as producers before the change wrote it: the wall clock under timestamp-millis."""
    return json.loads(json.dumps(schema).replace('"local-timestamp-millis"', '"timestamp-millis"'))


@pytest.mark.parametrize("name", sorted(WALL_CLOCK_FIELDS))
def test_event_times_are_wall_clock_and_say_so(name: str) -> None:
    schema = serde.load_schema_json(name)
    for field in schema["fields"]:
        text = json.dumps(field["type"])
        if field["name"] in WALL_CLOCK_FIELDS[name]:
            assert '"local-timestamp-millis"' in text, field["name"]
        else:
            assert '"local-timestamp-millis"' not in text, field["name"]  # true instants stay UTC


@pytest.mark.parametrize("name", sorted(WALL_CLOCK_FIELDS))
def test_records_written_before_the_change_still_read(name: str) -> None:
    """Only the logical type changed: the fingerprint ignores it, the bytes are the same."""
    from tests.unit.test_schemas import SAMPLES

    samples = SAMPLES | {
        "Evaluation": records.Evaluation("t1", "evaluated", "trip-duration", "v1", "champion", 1_700_000_000_000,
                                         1_700_000_600_000, 600.0, 620.0, 20.0),
        "ScoreWindow": records.ScoreWindow("trip-duration", "v1", "champion", 1_700_000_000_000, 1_700_003_600_000,
                                           10, 60.0, 70.0, 5.0, 90.0),
        "DriftAlert": records.DriftAlert("hour", 0.4, 0.25, 1_700_000_000_000, 1_700_086_400_000, 500, "v1",
                                         {"0": 0.5}, {"0": 0.2}),
    }
    current = serde_of(name)
    before = AvroSerde(_as_written_before(serde.load_schema_json(name)), record_type(name))
    assert before.fingerprint == current.fingerprint
    payload = before.encode(samples[name])
    assert payload == current.encode(samples[name])
    assert current.decode(payload) == samples[name]


def test_any_avro_reader_shows_the_pickup_at_its_new_york_time() -> None:
    """08:00 in New York reads as 08:00 (no zone), not as 08:00 UTC = 03:00 in New York."""
    from datetime import datetime

    from edml.trainer.generator import wall_clock_ms

    pickup = dataclasses.replace(trip(), pickup_time=wall_clock_ms(datetime(2024, 1, 15, 8, 0)))
    payload = trip_serde().encode(pickup)
    value = fastavro.schemaless_reader(io.BytesIO(payload[10:]), fastavro.parse_schema(V1))
    assert value["pickup_time"] == datetime(2024, 1, 15, 8, 0)
    assert value["pickup_time"].tzinfo is None
