"""Registry mode against a real schema registry (Apicurio) and a real broker.

With ``[schema_registry] url`` set, every topic is in the Confluent wire format: the trip
producer, the publisher, the scorer, the status reporter and the evaluation all take their serde
from ``schemas.wire.topic_serdes``, so what one writes the next reads (before, only the
evaluation switched, and it dead-lettered every prediction and trip).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import struct
import subprocess
import sys
import threading
from pathlib import Path

import fastavro
import pytest
from bytewax.testing import run_main
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from edml.dataflows.evaluation import pipeline_flow as evaluation_flow
from edml.evaluation.config import EvaluationConfig
from edml.model_topic.history import desired_records
from edml.model_topic.publisher import publish_model
from edml.replay.file_io import read_predictions
from edml.replay.recorder import record_topics
from edml.schemas.confluent import ConfluentSerde, RegistryRefused, make_client, subject_for
from edml.schemas.local_registry import start_on_free_port
from edml.schemas.serde import AvroSerde, load_schema_json
from edml.schemas.wire import topic_serdes, with_registry
from edml.trainer.generator import DAY_MS, DEFAULT_START_MS, generate_trips
from edml.trainer.producing import produce_trips
from edml.trainer.records import TripPickup, trip_serde

from edml.core.config import Settings
from edml.kafka.messages import SourceMessage
from edml.kafka.reading import read_to_end
from edml.pipelines.bound import open_pipeline
from edml.pipelines.events import EventDecoder
from tests.integration.scorer_process import ScorerProcess, scorer_env, wait_until

pytestmark = pytest.mark.kafka
NAME = "trip-duration"


def registry_env(settings: Settings) -> dict[str, str]:
    return {"EDML_SCHEMA_REGISTRY_URL": settings.schema_registry_url}


def decoded(settings: Settings, topic: str) -> list:
    serde = topic_serdes(settings).for_topic(topic)
    return [serde.decode(m.value) for m in read_to_end(settings, topic)]


def schema_ids(settings: Settings, topic: str) -> set[int]:
    """The schema ids in the Confluent headers of every value of ``topic`` (AssertionError if one has none)."""
    ids = set()
    for m in read_to_end(settings, topic):
        assert m.value[:1] == b"\x00", (topic, m.value[:10])
        ids.add(struct.unpack_from(">I", m.value, 1)[0])
    return ids


def test_scoring_evaluation_and_replay_in_registry_mode(registry_settings: Settings, trained_model_dir: Path,
                                                        tmp_path: Path) -> None:
    s, t = registry_settings, registry_settings.topics
    publish_model(s, trained_model_dir, NAME, version="v1", force=True)
    assert desired_records(s)[NAME].version == "v1"  # the model topic read back through the registry
    trips = generate_trips(400, seed=5, start_ms=DEFAULT_START_MS + 28 * DAY_MS)
    produce_trips(s, trips, with_dropoffs=True)

    scorer = ScorerProcess(s, env=registry_env(s)).start()
    try:
        wait_until(lambda: len(read_to_end(s, t.predictions)) >= len(trips), 120, message=scorer.log())
        wait_until(lambda: any(st.status == "active" for st in decoded(s, t.model_status)), 30,
                   message=scorer.log())
    finally:
        scorer.stop()
    predictions = decoded(s, t.predictions)
    assert {p.trip_id for p in predictions} == {g.pickup.trip_id for g in trips}
    assert read_to_end(s, t.dead_letter) == [], decoded(s, t.dead_letter)

    run_main(evaluation_flow(s, EvaluationConfig(), open_pipeline(None, s), tail=False))
    evaluations = decoded(s, t.evaluations)
    dead = decoded(s, t.dead_letter)
    print(f"[registry] trips={len(trips)} predictions={len(predictions)} evaluations={len(evaluations)} "
          f"dead_letters={len(dead)}")
    assert dead == []  # before the fix: every prediction and every trip
    assert {e.key for e in evaluations} == {g.pickup.trip_id for g in trips}

    # every topic was written in the Confluent wire format, each under its own subject
    client = SchemaRegistryClient({"url": s.schema_registry_url})
    for topic in (t.trips, t.labels, t.models, t.predictions, t.model_status, t.evaluations):
        (schema_id,) = schema_ids(s, topic)
        assert client.get_latest_version(subject_for(topic)).schema_id == schema_id

    # the recorder keeps the Confluent-framed bytes; replay reads them through the registry
    archive = tmp_path / "archive"
    assert record_topics(s, archive, stop_at_end=True).messages == {"events": len(trips), "labels": len(trips)}
    proc = subprocess.run([sys.executable, "-m", "edml.cli", "replay", "--input", str(archive), "--model", "v1",
                           "--out", str(tmp_path / "out")], env={**scorer_env(s), **registry_env(s)},
                          capture_output=True, text=True, timeout=300)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    replayed = {p["trip_id"]: p for p in read_predictions(tmp_path / "out" / "predictions.csv")}
    assert set(replayed) == {p.trip_id for p in predictions}
    for p in predictions:
        assert math.isclose(replayed[p.trip_id]["predicted_duration_s"], p.predicted_duration_s, rel_tol=1e-6)


def test_confluent_avro_serdes_read_and_write_edml_records(registry_settings: Settings) -> None:
    """edml's codec and confluent-kafka's AvroSerializer/AvroDeserializer read each other's bytes."""
    s, topic = registry_settings, registry_settings.topics.trips
    trip = generate_trips(1, seed=3)[0].pickup
    serde = topic_serdes(s).for_serde(s.topics.trips, trip_serde())
    client = SchemaRegistryClient({"url": s.schema_registry_url})
    ctx = SerializationContext(topic, MessageField.VALUE)
    theirs = AvroDeserializer(client)(serde.encode(trip), ctx)
    # it applies the schema's logical type: pickup_time is a timestamp-millis
    theirs["pickup_time"] = round(theirs["pickup_time"].timestamp() * 1000)
    assert TripPickup(**theirs) == trip
    serializer = AvroSerializer(client, json.dumps(load_schema_json("TripPickup")),
                                to_dict=lambda r, _ctx: dataclasses.asdict(r))
    assert serde.decode(serializer(trip, ctx)) == trip


def test_schema_evolution_through_the_registry(registry_settings: Settings) -> None:
    """BACKWARD subjects: a field added with a default registers, old records still read; a removal is refused."""
    s, topic = registry_settings, registry_settings.topics.trips
    client = SchemaRegistryClient({"url": s.schema_registry_url})
    subject = subject_for(topic)
    serde = topic_serdes(s).for_serde(s.topics.trips, trip_serde())
    old = generate_trips(1, seed=4)[0].pickup
    old_bytes = serde.encode(old)  # registers v1
    client.set_compatibility(subject, "BACKWARD")

    v2 = load_schema_json("TripPickup")
    v2["fields"].append({"name": "vendor", "type": "string", "default": "unknown"})
    v2_id = client.register_schema(subject, Schema(json.dumps(v2), "AVRO"))
    assert v2_id != serde.schema_id
    assert [v.version for v in (client.get_version(subject, 1), client.get_version(subject, 2))] == [1, 2]
    assert serde.decode(old_bytes) == old  # records written before the change still read

    # a v2 writer's record: edml's v1 reader resolves it through the registry (the new field is ignored)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(v2), {**dataclasses.asdict(old), "vendor": "acme"})
    assert serde.decode(b"\x00" + struct.pack(">I", v2_id) + buf.getvalue()) == old

    # removing a field without a default breaks BACKWARD: the registry refuses, edml says so in one line
    v3 = load_schema_json("TripPickup")
    v3["fields"] = [f for f in v3["fields"] if f["name"] != "pickup_zone"]
    v3["fields"].append({"name": "pickup_zone_name", "type": "string"})
    refused = ConfluentSerde(AvroSerde(v3, TripPickup), client, subject)
    with pytest.raises(RegistryRefused, match="refused TripPickup's schema under") as e:
        refused.encode(old)
    assert "\n" not in str(e.value)
    print(f"[evolution] {e.value}")


def _messages(topic: str, values: list[bytes]) -> list[SourceMessage]:
    return [SourceMessage(topic, 0, i, f"k{i}".encode(), v, 1_700_000_000_000) for i, v in enumerate(values)]


def test_an_unknown_schema_id_is_a_dead_letter_with_its_reason(registry_settings: Settings) -> None:
    s = registry_settings
    serde = topic_serdes(s).for_serde(s.topics.trips, trip_serde())
    good = [g.pickup for g in generate_trips(3, seed=6)]
    payloads = [serde.encode(t) for t in good]
    unknown = b"\x00" + struct.pack(">I", 987_654_321) + payloads[0][5:]
    taxi = open_pipeline(None, s)
    decoder = EventDecoder(taxi, topic_serdes(s).for_schema(s.topics.trips, taxi.schema))
    batch = decoder.decode_batch(_messages(s.topics.trips, [payloads[0], unknown, *payloads[1:]]))
    assert len(batch) == 3 and batch.columns["trip_id"].tolist() == [t.trip_id for t in good]
    (letter,) = batch.dead_letters
    print(f"[unknown id] {letter.error_kind}: {letter.message}")
    assert (letter.offset, letter.error_kind, letter.value) == (1, "unknown-schema-id", unknown)
    assert "987654321" in letter.message and "404" in letter.message


def test_an_unreachable_registry_is_retried_not_dead_lettered(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    """Trips whose writer schema the scorer has not seen wait for the registry to come back; none is lost."""
    registry = start_on_free_port(tmp_path / "registry")
    try:
        settings = with_registry(Settings(), registry.url)
        subject = subject_for(settings.topics.trips)
        writer = ConfluentSerde(trip_serde(), make_client(settings.schema_registry), subject)
        trips = [g.pickup for g in generate_trips(50, seed=7)]
        payloads = [writer.encode(t) for t in trips]
        # a reader that has never asked the registry for this id: it must when the batch comes
        taxi = open_pipeline(None, settings)
        reader = ConfluentSerde(AvroSerde(taxi.schema, None), make_client(settings.schema_registry), subject)
        registry.down()
        result: list = []
        decoding = threading.Thread(target=lambda: result.append(
            EventDecoder(taxi, reader).decode_batch(_messages(settings.topics.trips, payloads))))
        with caplog.at_level(logging.WARNING, "edml.registry"):
            decoding.start()
            wait_until(lambda: "schema registry unavailable" in caplog.text, 60, 0.2, "no retry was logged")
            assert decoding.is_alive() and not result  # waiting, not dead-lettering
            registry.up()  # the same data folder: ids survive a restart
            decoding.join(120)
        (batch,) = result
        print(f"[unreachable] retries logged: {caplog.text.count('retrying in')}; trips={len(batch)} "
              f"dead_letters={len(batch.dead_letters)}")
        assert batch.dead_letters == [] and batch.columns["trip_id"].tolist() == [t.trip_id for t in trips]
    finally:
        registry.down()
