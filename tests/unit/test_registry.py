"""The Confluent wire format and the schema registry client.

No Confluent Schema Registry runs on this machine, so the client is tested against a minimal
registry written here (``http.server`` in a thread). It implements the two endpoints the client
uses with the Confluent REST API's JSON shapes and error codes, and assigns one global id per
distinct schema, as Confluent's registry does.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fastavro
import pytest
from edml.schemas import records, serde, wire
from edml.schemas.registry import (
    ConfluentAvroSerde,
    RegistryUnavailable,
    SchemaNotFound,
    SchemaRegistryClient,
    SchemaRegistryError,
    subject_for,
)
from edml.schemas.serde import AvroSerde, DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edml.core.config import Settings, Topics
from edml.core.errors import OperatorError
from edml.kafka.local_broker import free_port
from tests.unit.test_schema_evolution import V1, V2, TripPickupV2, trip_v2
from tests.unit.test_schemas import SAMPLES, trip

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass
class FakeRegistryState:
    """What the minimal registry stores, and every request it saw."""

    ids: dict[str, int] = field(default_factory=dict)  # canonical schema text -> id
    schemas: dict[int, str] = field(default_factory=dict)  # id -> schema text as registered
    subjects: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    incompatible: set[str] = field(default_factory=set)  # subjects that refuse new versions (409)
    fail_with: int | None = None  # answer every request with this HTTP status
    credentials: str | None = None  # "user:password" required as basic auth
    schema_type: dict[int, str] = field(default_factory=dict)


def make_handler(state: FakeRegistryState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _guard(self) -> bool:
            state.requests.append((self.command, self.path))
            if state.fail_with:
                self._send(state.fail_with, {"error_code": state.fail_with * 100, "message": "backend down"})
                return False
            if state.credentials:
                want = "Basic " + base64.b64encode(state.credentials.encode()).decode()
                if self.headers.get("Authorization") != want:
                    self._send(401, {"error_code": 401, "message": "Unauthorized"})
                    return False
            return True

        def do_POST(self) -> None:
            if not self._guard():
                return
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
                self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
                return
            subject = parts[1]
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                canonical = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(json.loads(body["schema"])))
            except Exception as e:
                self._send(422, {"error_code": 42201, "message": f"Invalid schema: {e}"})
                return
            if canonical not in state.ids:
                if state.subjects.get(subject) and subject in state.incompatible:
                    self._send(409, {"error_code": 409, "message": "Schema being registered is incompatible"})
                    return
                state.ids[canonical] = len(state.ids) + 1
                state.schemas[state.ids[canonical]] = body["schema"]
            schema_id = state.ids[canonical]
            versions = state.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            self._send(200, {"id": schema_id})

        def do_GET(self) -> None:
            if not self._guard():
                return
            parts = self.path.strip("/").split("/")
            if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                schema_id = int(parts[2])
                if schema_id in state.schemas:
                    answer = {"schema": state.schemas[schema_id]}
                    if schema_id in state.schema_type:
                        answer["schemaType"] = state.schema_type[schema_id]
                    self._send(200, answer)
                else:
                    self._send(404, {"error_code": 40403, "message": "Schema not found"})
                return
            self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    return Handler


@dataclass
class FakeRegistry:
    url: str
    state: FakeRegistryState


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    state = FakeRegistryState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    # a short poll interval: shutdown() waits up to one interval
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield FakeRegistry(f"http://127.0.0.1:{server.server_address[1]}", state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def trip_confluent(registry: FakeRegistry, topic: str = "trips") -> ConfluentAvroSerde[records.TripPickup]:
    return ConfluentAvroSerde(serde.trip_serde(), SchemaRegistryClient(registry.url), subject_for(topic))


# --- the client -------------------------------------------------------------------------------
def test_register_returns_the_id_and_caches_it(registry: FakeRegistry) -> None:
    client = SchemaRegistryClient(registry.url)
    first = client.register("trips-value", V1)
    assert client.register("trips-value", V1) == first
    assert registry.state.requests == [("POST", "/subjects/trips-value/versions")]
    assert registry.state.subjects == {"trips-value": [first]}
    # the registry stores the .avsc as is, logical types and docs included, for other readers
    stored = json.loads(registry.state.schemas[first])
    assert stored == V1


def test_schema_by_id_fetches_once(registry: FakeRegistry) -> None:
    schema_id = SchemaRegistryClient(registry.url).register("trips-value", V1)
    reader = SchemaRegistryClient(registry.url)
    assert reader.schema_by_id(schema_id) == V1
    assert reader.schema_by_id(schema_id) == V1
    assert registry.state.requests.count(("GET", f"/schemas/ids/{schema_id}")) == 1


def test_one_id_per_distinct_schema(registry: FakeRegistry) -> None:
    client = SchemaRegistryClient(registry.url)
    a = client.register("trips-value", V1)
    b = client.register("other-trips-value", V1)
    c = client.register("trips-value", V2)
    assert a == b != c


def test_unknown_id_is_schema_not_found(registry: FakeRegistry) -> None:
    with pytest.raises(SchemaNotFound) as info:
        SchemaRegistryClient(registry.url).schema_by_id(99)
    assert info.value.status == 404 and info.value.error_code == 40403
    assert "Schema not found" in str(info.value)


def test_incompatible_schema_is_refused_with_the_registrys_reason(registry: FakeRegistry) -> None:
    registry.state.incompatible.add("trips-value")
    client = SchemaRegistryClient(registry.url)
    client.register("trips-value", V1)
    with pytest.raises(SchemaRegistryError) as info:
        client.register("trips-value", V2)
    assert isinstance(info.value, OperatorError)  # the CLI prints it as one line
    assert info.value.status == 409 and "incompatible" in str(info.value)


def test_unreachable_registry() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(RegistryUnavailable, match="unreachable") as info:
        SchemaRegistryClient(url).register("trips-value", V1)
    assert url in str(info.value)


def test_server_errors_are_unavailable_and_fail_fast_for_a_while(registry: FakeRegistry) -> None:
    registry.state.fail_with = 503
    client = SchemaRegistryClient(registry.url, retry_after_s=60)
    with pytest.raises(RegistryUnavailable, match="503"):
        client.schema_by_id(1)
    with pytest.raises(RegistryUnavailable, match="unavailable"):
        client.schema_by_id(2)
    assert len(registry.state.requests) == 1  # the second call did not wait for the registry


def test_registry_back_after_the_retry_interval(registry: FakeRegistry) -> None:
    registry.state.fail_with = 500
    client = SchemaRegistryClient(registry.url, retry_after_s=0)
    with pytest.raises(RegistryUnavailable):
        client.register("trips-value", V1)
    registry.state.fail_with = None
    assert client.register("trips-value", V1) == 1


def test_basic_auth_from_the_url(registry: FakeRegistry) -> None:
    registry.state.credentials = "api-key:s3cr/et"
    host = registry.url.removeprefix("http://")
    with pytest.raises(SchemaRegistryError, match="401"):
        SchemaRegistryClient(registry.url).register("trips-value", V1)
    client = SchemaRegistryClient(f"http://api-key:s3cr%2Fet@{host}/")
    assert client.register("trips-value", V1) == 1
    assert "s3cr" not in client.url  # the secret never shows up in error messages


@pytest.mark.parametrize("url", ["", "localhost:8081", "ftp://registry", "http://"])
def test_bad_registry_url_is_an_operator_error(url: str) -> None:
    with pytest.raises(SchemaRegistryError, match="not an http"):
        SchemaRegistryClient(url)


# --- the Confluent wire format ------------------------------------------------------------------
def test_confluent_frame_is_magic_zero_then_big_endian_id_then_body(registry: FakeRegistry) -> None:
    s = trip_confluent(registry)
    payload = s.encode(trip())
    assert payload[0] == 0
    assert int.from_bytes(payload[1:5], "big") == s.schema_id == 1
    assert payload[5:] == serde.trip_serde().encode_body(trip())
    assert s.decode(payload) == trip()


def test_plain_fastavro_reads_a_confluent_payload_after_five_bytes(registry: FakeRegistry) -> None:
    """What a Confluent deserializer does: strip 5 bytes, fetch the schema by id, read."""
    payload = trip_confluent(registry).encode(trip())
    schema_id = int.from_bytes(payload[1:5], "big")
    writer = json.loads(registry.state.schemas[schema_id])  # the .avsc with logical types
    value = fastavro.schemaless_reader(io.BytesIO(payload[5:]), fastavro.parse_schema(writer))
    assert value["trip_id"] == trip().trip_id
    assert value["pickup_time"].timestamp() * 1000 == trip().pickup_time
    assert value["trip_distance_km"] == trip().trip_distance_km


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_record_round_trips_in_confluent_format(registry: FakeRegistry, name: str) -> None:
    client = SchemaRegistryClient(registry.url)
    writer = ConfluentAvroSerde(serde.serde_for(name), client, f"topic-{name}-value")
    reader = ConfluentAvroSerde(serde.serde_for(name), SchemaRegistryClient(registry.url), f"topic-{name}-value")
    assert reader.decode(writer.encode(SAMPLES[name])) == SAMPLES[name]


def test_a_consumer_fetches_an_unknown_writer_schema_once(registry: FakeRegistry) -> None:
    payload = trip_confluent(registry).encode(trip())
    consumer = trip_confluent(registry)  # a fresh process: empty caches, never registered
    for _ in range(3):
        assert consumer.decode(payload) == trip()
    assert registry.state.requests.count(("GET", "/schemas/ids/1")) == 1


def test_evolution_through_the_registry_both_ways(registry: FakeRegistry) -> None:
    v2_producer = ConfluentAvroSerde(AvroSerde(V2, TripPickupV2), SchemaRegistryClient(registry.url), "trips-value")
    v1_producer = trip_confluent(registry)
    v2_payload, v1_payload = v2_producer.encode(trip_v2()), v1_producer.encode(trip())
    assert v2_payload[1:5] != v1_payload[1:5]
    # forward: the v1 reader learns v2 from the registry and ignores the new fields
    assert trip_confluent(registry).decode(v2_payload) == trip()
    # backward: the v2 reader reads v1 with the defaults
    v2_reader = ConfluentAvroSerde(AvroSerde(V2, TripPickupV2), SchemaRegistryClient(registry.url), "trips-value")
    got = v2_reader.decode(v1_payload)
    assert got.vendor_id is None and got.payment_type == "card"


# --- decode errors ----------------------------------------------------------------------------------
def confluent_kind(s: ConfluentAvroSerde[Any], payload: Any) -> str:
    with pytest.raises(DecodeError) as info:
        s.decode(payload)
    assert info.value.message
    return info.value.kind


def test_decode_errors(registry: FakeRegistry) -> None:
    s = trip_confluent(registry)
    payload = s.encode(trip())
    assert confluent_kind(s, None) == "null-value"
    assert confluent_kind(s, b"") == "empty"
    assert confluent_kind(s, serde.trip_serde().encode(trip())) == "bad-magic"  # single-object on a Confluent topic
    assert confluent_kind(s, b"\x01" + payload[1:]) == "bad-magic"
    assert confluent_kind(s, payload + b"\x00") == "trailing-bytes"
    assert confluent_kind(s, b"\x00\x00\x00\x00\x63" + payload[5:]) == "unknown-schema-id"
    for length in range(1, len(payload)):
        assert confluent_kind(s, payload[:length]) in {"truncated", "malformed"}, length


def test_another_records_schema_id_is_a_schema_mismatch(registry: FakeRegistry) -> None:
    prediction = ConfluentAvroSerde(serde.prediction_serde(), SchemaRegistryClient(registry.url), "p-value")
    payload = prediction.encode(SAMPLES["Prediction"])
    assert confluent_kind(trip_confluent(registry), payload) == "schema-mismatch"


def test_a_non_avro_schema_id_is_a_schema_mismatch(registry: FakeRegistry) -> None:
    payload = trip_confluent(registry).encode(trip())
    registry.state.schema_type[1] = "PROTOBUF"
    assert confluent_kind(trip_confluent(registry), payload) == "schema-mismatch"


def test_registry_unavailable_while_decoding(registry: FakeRegistry) -> None:
    payload = trip_confluent(registry).encode(trip())
    registry.state.fail_with = 503
    assert confluent_kind(trip_confluent(registry), payload) == "registry-unavailable"
    down = ConfluentAvroSerde(serde.trip_serde(), SchemaRegistryClient(f"http://127.0.0.1:{free_port()}"), "t-value")
    assert confluent_kind(down, payload) == "registry-unavailable"


def test_encode_without_a_registry_is_an_operator_error() -> None:
    down = ConfluentAvroSerde(serde.trip_serde(), SchemaRegistryClient(f"http://127.0.0.1:{free_port()}"), "t-value")
    with pytest.raises(RegistryUnavailable) as info:
        down.encode(trip())
    assert isinstance(info.value, OperatorError)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=80))
def test_any_bytes_are_a_record_or_a_decode_error(registry: FakeRegistry, payload: bytes) -> None:
    s = trip_confluent(registry)
    s.encode(trip())  # id 1 is known: random bodies behind b"\0\0\0\0\1" reach the Avro reader
    for candidate in (payload, b"\x00\x00\x00\x00\x01" + payload):
        try:
            assert isinstance(s.decode(candidate), records.TripPickup)
        except DecodeError:
            pass


# --- the format switch -----------------------------------------------------------------------------
def test_without_a_registry_url_topics_use_single_object_encoding() -> None:
    s = wire.serde_for_topic(Settings(), "TripPickup", "trips")
    assert s is serde.trip_serde()
    assert s.encode(trip())[:2] == b"\xc3\x01"


def test_with_a_registry_url_topics_use_the_confluent_format(registry: FakeRegistry) -> None:
    config = Settings(schema_registry_url=registry.url, topics=Topics().with_prefix("x-"))
    s = wire.serde_for_topic(config, "TripPickup", config.topics.trips)
    payload = s.encode(trip())
    assert payload[:1] == b"\x00"
    assert registry.state.subjects == {"x-trips-value": [1]}  # TopicNameStrategy
    assert s.decode(payload) == trip()
    assert wire.serde_for_topic(config, "TripPickup", config.topics.trips) is s  # ids cached per process
    other = wire.serde_for_topic(config, "Prediction", config.topics.predictions)
    other.encode(SAMPLES["Prediction"])
    assert set(registry.state.subjects) == {"x-trips-value", "x-predictions-value"}
