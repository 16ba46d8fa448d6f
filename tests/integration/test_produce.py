"""Generated trips on a real Kafka broker: pick-ups on the trips topic, drop-offs on the labels topic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from edml.trainer.generator import generate_trips
from edml.trainer.producing import produce_live, produce_trips
from edml.trainer.records import dropoff_serde, trip_serde

from edml.core.config import Settings
from edml.kafka.reading import read_to_end, wait_for_count

pytestmark = pytest.mark.kafka


def test_produce_trips_puts_every_pickup_and_dropoff_on_its_topic(settings: Settings) -> None:
    trips = generate_trips(300, seed=21)
    assert produce_trips(settings, trips, with_dropoffs=True) == 300

    pickups = read_to_end(settings, settings.topics.trips)
    dropoffs = read_to_end(settings, settings.topics.labels)
    assert len(pickups) == len(dropoffs) == 300
    by_id = {t.pickup.trip_id: t for t in trips}
    for msg in pickups:
        pickup = trip_serde().decode(msg.value)
        assert msg.key == pickup.trip_id.encode()
        assert pickup == by_id[pickup.trip_id].pickup
    decoded = [dropoff_serde().decode(m.value) for m in dropoffs]
    assert sorted(d.trip_id for d in decoded) == sorted(by_id)
    assert all(d == by_id[d.trip_id].dropoff for d in decoded)
    assert {m.key for m in dropoffs} == {k.encode() for k in by_id}


def test_produce_trips_without_dropoffs_leaves_the_dropoffs_topic_empty(settings: Settings) -> None:
    assert produce_trips(settings, generate_trips(50, seed=2)) == 50
    assert len(read_to_end(settings, settings.topics.trips)) == 50
    assert read_to_end(settings, settings.topics.labels) == []


def test_live_production_sends_each_dropoff_after_its_pickup(settings: Settings) -> None:
    trips = generate_trips(60, seed=5)
    # Time compressed 100000x: a 20-minute trip ends 12 ms after its pick-up.
    stats = produce_live(settings, trips, rate=300.0, time_scale=100_000.0)
    assert stats.events == stats.labels == 60
    pickup_ts = {
        trip_serde().decode(m.value).trip_id: m.timestamp_ms for m in read_to_end(settings, settings.topics.trips)
    }
    dropoffs = read_to_end(settings, settings.topics.labels)
    assert len(pickup_ts) == len(dropoffs) == 60
    for m in dropoffs:
        assert m.timestamp_ms >= pickup_ts[dropoff_serde().decode(m.value).trip_id]


def test_edml_produce_command(settings: Settings, tmp_path: Path) -> None:
    env = os.environ | {
        "EDML_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "EDML_TOPIC_TRIPS": settings.topics.trips,
        "EDML_TOPIC_LABELS": settings.topics.labels,
    }
    run = subprocess.run(
        [sys.executable, "-m", "edml.cli", "produce", "--rate", "80", "--duration", "1", "--time-scale", "100000",
         "--seed", "3", "--drift-after", "0.5", "--drift-slowdown", "0.3"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "produced 80 pick-ups" in run.stdout
    assert len(wait_for_count(settings, settings.topics.trips, 80, timeout=30)) == 80
    assert len(wait_for_count(settings, settings.topics.labels, 80, timeout=30)) == 80


def test_edml_produce_to_a_missing_topic_is_one_line_naming_it_and_the_fix(settings: Settings, tmp_path: Path) -> None:
    missing = f"{settings.topics.trips}-never-created"
    env = os.environ | {
        "EDML_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "EDML_TOPIC_TRIPS": missing,
        "EDML_TOPIC_LABELS": settings.topics.labels,
    }
    run = subprocess.run(
        [sys.executable, "-m", "edml.cli", "produce", "--rate", "200", "--duration", "1"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.strip().splitlines() == [
        f"edml: error: topic {missing} does not exist on {settings.bootstrap_servers}: "
        "create them with `edml topics create`"
    ]
    assert "200/200" not in run.stdout + run.stderr
    assert read_to_end(settings, settings.topics.labels) == []
