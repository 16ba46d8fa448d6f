"""The local broker is a real Apache Kafka: produce, consume, topic configs, CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from edml.core.config import Settings
from edml.kafka.clients import make_producer
from edml.kafka.reading import read_to_end
from edml.kafka.topics import create_topics, topic_config

pytestmark = pytest.mark.kafka


def test_produce_and_consume_round_trip(settings: Settings) -> None:
    producer = make_producer(settings)
    for i in range(50):
        producer.produce(settings.topics.trips, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(10) == 0
    messages = read_to_end(settings, settings.topics.trips)
    assert sorted(m.value for m in messages) == sorted(f"v{i}".encode() for i in range(50))
    assert {m.partition for m in messages} == {0, 1}


def test_models_topic_is_compacted(settings: Settings) -> None:
    assert topic_config(settings, settings.topics.models)["cleanup.policy"] == "compact"
    assert topic_config(settings, settings.topics.trips)["cleanup.policy"] == "delete"


def test_create_topics_is_idempotent(settings: Settings) -> None:
    again = create_topics(settings)
    assert set(again.values()) == {"exists"}
    assert settings.topics.models in again


def test_cli_topics_list_reports_the_topics(settings: Settings) -> None:
    env = {"EDML_TOPIC_PREFIX": settings.topics.trips.removesuffix("trips")}
    out = subprocess.run(
        [sys.executable, "-m", "edml.cli", "topics", "list", "-b", settings.bootstrap_servers],
        capture_output=True, text=True, env={**__import__("os").environ, **env}, check=True,
    ).stdout
    assert f"ok       {settings.topics.models}" in out
    assert "cleanup.policy=compact" in out


METERS_TOML = """
[input]
topic = "meter-readings"
schema = "reading.avsc"
key = "meter_id"
event_time = "read_at"

[model]
name = "meter-load"
"""
METER_READING = {"type": "record", "name": "MeterReading", "fields": [
    {"name": "meter_id", "type": "string"},
    {"name": "read_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "kwh", "type": "double"}]}  # fmt: skip


def test_cli_topics_create_for_a_declared_pipeline_creates_its_own_topics(settings: Settings, tmp_path) -> None:
    import json
    import os

    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "meters.toml").write_text(METERS_TOML)
    (folder / "reading.avsc").write_text(json.dumps(METER_READING))
    prefix = settings.topics.trips.removesuffix("trips")
    env = {**os.environ, "EDML_TOPIC_PREFIX": prefix, "EDML_PIPELINES_DIR": str(folder)}
    args = ["-b", settings.bootstrap_servers, "--pipeline", "meters"]
    created = subprocess.run([sys.executable, "-m", "edml.cli", "topics", "create", *args],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert created.returncode == 0, created.stderr
    assert f"created  {prefix}meter-readings" in created.stdout  # the declared input topic
    assert f"created  {prefix}meters-predictions" in created.stdout  # the pipeline's own predictions
    assert f"{prefix}trips" not in created.stdout  # not the taxi pipeline's
    listed = subprocess.run([sys.executable, "-m", "edml.cli", "topics", "list", *args],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert f"ok       {prefix}meter-readings" in listed.stdout and "missing" not in listed.stdout


def test_unreachable_broker_is_one_line(tmp_path) -> None:
    from edml.kafka.local_broker import free_port

    proc = subprocess.run(
        [sys.executable, "-m", "edml.cli", "topics", "create", "-b", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "make kafka-up" in proc.stderr


def _produce_trips(settings: Settings, n: int) -> list[str]:
    from edml.trainer.generator import generate_trips
    from edml.trainer.records import trip_serde

    serde, producer = trip_serde(), make_producer(settings)
    trips = [g.pickup for g in generate_trips(n, seed=3)]
    for trip in trips:
        producer.produce(settings.topics.trips, key=trip.trip_id.encode(), value=serde.encode(trip))
    assert producer.flush(10) == 0
    return [t.trip_id for t in trips]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)")
def test_kcat_lists_the_topics_and_reads_the_trips(settings: Settings) -> None:
    trip_ids = _produce_trips(settings, 20)
    listing = subprocess.run(["kcat", "-b", settings.bootstrap_servers, "-L"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    for topic in settings.topics.names().values():
        assert f'topic "{topic}"' in listing
    keys = subprocess.run(["kcat", "-b", settings.bootstrap_servers, "-C", "-t", settings.topics.trips, "-e",
                           "-f", "%k\\n"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert sorted(keys.split()) == sorted(trip_ids)
    values = subprocess.run(["kcat", "-b", settings.bootstrap_servers, "-C", "-t", settings.topics.trips, "-e",
                             "-f", "%s"], capture_output=True, check=True, timeout=30).stdout
    assert values.count(b"\xc3\x01") >= len(trip_ids)  # one Avro single-object header per trip


def test_kafka_console_consumer_reads_what_edml_writes(settings: Settings) -> None:
    from edml.kafka.local_broker import LIB_DIR

    trip_ids = _produce_trips(settings, 15)
    out = subprocess.run(
        ["java", "-cp", f"{LIB_DIR}/*", "org.apache.kafka.tools.consumer.ConsoleConsumer",
         "--bootstrap-server", settings.bootstrap_servers, "--topic", settings.topics.trips, "--from-beginning",
         "--max-messages", str(len(trip_ids)), "--property", "print.key=true", "--property", "print.value=false"],
        capture_output=True, text=True, timeout=90,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(out.stdout.split()) == sorted(trip_ids)
