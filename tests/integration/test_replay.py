"""Record live topics from a real broker, replay them, and compare with what `edml serve` predicted."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edml.model_topic.publisher import publish_model
from edml.replay.archive import ArchiveReader
from edml.replay.file_io import read_predictions
from edml.replay.recorder import record_topics
from edml.trainer.generator import generate_trips
from edml.trainer.producing import produce_trips

from edml.core.config import Settings
from edml.kafka.reading import read_to_end
from tests.integration.scorer_process import ScorerProcess, predictions, scorer_env, wait_until

pytestmark = pytest.mark.kafka
NAME = "trip-duration"


def edml(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edml.cli", *args], env=scorer_env(settings), capture_output=True,
                          text=True, timeout=300)


def test_replay_predicts_what_serve_predicted(settings: Settings, trained_model_dir: Path, tmp_path: Path) -> None:
    publish_model(settings, trained_model_dir, NAME, version="v1", force=True)
    trips = generate_trips(600, seed=21)
    produce_trips(settings, trips, with_dropoffs=True)
    scorer = ScorerProcess(settings).start()
    try:
        wait_until(lambda: len({p.trip_id for p in predictions(settings)}) >= len(trips), 120, message=scorer.log())
    finally:
        scorer.stop()
    live = {p.trip_id: p for p in predictions(settings)}

    archive = tmp_path / "archive"
    stats = record_topics(settings, archive, stop_at_end=True)
    assert stats.messages == {"events": 600, "labels": 600}

    # the gate's champion is the model topic's desired version (v1); the candidate is v1 from the store
    proc = edml(settings, "replay", "--input", str(archive), "--model", "v1", "--out", str(tmp_path / "out"), "--gate")
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "replay gate passed: candidate v1 MAE" in proc.stdout and "vs champion v1 MAE" in proc.stdout
    replayed = read_predictions(tmp_path / "out" / "predictions.csv")
    champion = {p["trip_id"]: p for p in replayed if p["role"] == "champion"}
    challenger = {p["trip_id"]: p for p in replayed if p["role"] == "challenger"}
    assert set(champion) == set(live) == {t.pickup.trip_id for t in trips}
    worst = 0.0
    for trip_id, p in champion.items():
        served = live[trip_id]
        assert (p["model_name"], p["model_version"], p["event_time"]) == (served.model_name, served.model_version,
                                                                          served.event_time)
        assert challenger[trip_id]["predicted_duration_s"] == p["predicted_duration_s"]
        value = p["predicted_duration_s"]
        worst = max(worst, abs(value - served.predicted_duration_s) / served.predicted_duration_s)
        assert math.isclose(value, served.predicted_duration_s, rel_tol=1e-6), trip_id
    exact = sum(p["predicted_duration_s"] == live[t].predicted_duration_s for t, p in champion.items())
    print(f"[live vs replay] {len(champion)} trips: {exact} bit-identical, largest relative difference {worst:.2e}")


def test_recorder_keeps_an_exact_copy_rolls_and_resumes(settings: Settings, tmp_path: Path) -> None:
    first, more = generate_trips(300, seed=22), generate_trips(200, seed=23)
    produce_trips(settings, first, with_dropoffs=True)
    archive = tmp_path / "archive"
    stats = record_topics(settings, archive, stop_at_end=True, max_segment_bytes=6_000)
    assert stats.messages == {"events": 300, "labels": 300}

    # `edml record` as an operator runs it: until SIGTERM; segments roll by age meanwhile
    recorder = subprocess.Popen([sys.executable, "-m", "edml.cli", "record", "--out", str(archive),
                                 "--max-segment-age", "0.5"], env=scorer_env(settings), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        produce_trips(settings, more, with_dropoffs=True)
        wait_until(lambda: _archived(archive) == {"events": 500, "labels": 500}, 60,
                   message="the recorder did not archive the new trips")
    finally:
        recorder.terminate()
        out, err = recorder.communicate(timeout=30)
    print(out)
    assert recorder.returncode == 0, err[-3000:]
    assert "archived 200 events, 200 labels" in out, "only the new messages"

    reader = ArchiveReader(archive)
    print(f"[recorder] {len(reader.segments)} segments: "
          f"{[(s.path, s.records) for s in reader.segments]}")
    for partition in range(settings.partitions):
        # finished segments are immutable: the resumed run wrote new ones after them
        segments = reader.segments_of("events", partition)
        assert [s.sequence for s in segments] == list(range(len(segments))) and len(segments) >= 2
        assert [s.first_offset for s in segments[1:]] == [s.last_offset + 1 for s in segments[:-1]]
    for role, topic in (("events", settings.topics.trips), ("labels", settings.topics.labels)):
        on_kafka = sorted((m.partition, m.offset, m.key, m.value, m.timestamp_ms) for m in read_to_end(settings, topic))
        archived = [(m.partition, m.offset, m.key, m.value, m.timestamp_ms) for m in reader.messages(role)]
        assert archived == on_kafka, f"{role}: the archive is an exact copy, in (partition, offset) order"
        assert len(archived) == 500


def _archived(archive: Path) -> dict[str, int]:
    reader = ArchiveReader(archive)
    return {role: reader.count(role) for role in reader.roles()}


# --- a pipeline edml has never seen, declared only in this test, with binary labels ------------------

LABEL_SCHEMA = {
    "type": "record", "name": "SensorFailure", "namespace": "test.sensors",
    "fields": [{"name": "sensor_id", "type": "string"}, {"name": "failed", "type": "boolean"},
               {"name": "reported_at", "type": "long"}],
}
LABELS_DECLARATION = """
[labels]
topic = "sensor-failures"
schema = "failures.avsc"
key = "sensor_id"
field = "failed"
time = "reported_at"
task = "binary"
prediction = "risk"
threshold = 0.5
"""


def test_record_and_replay_a_declared_pipeline_with_binary_labels(settings: Settings, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from edml.schemas.wire import topic_serdes

    from edml.kafka.clients import make_producer
    from edml.kafka.topics import create_topics
    from edml.pipelines.bound import bind_pipeline, pipeline_settings
    from edml.pipelines.declaration import load_pipeline
    from tests.integration.test_sensor_pipeline import DECLARATION, SCHEMA, SensorModel, reading, write_model

    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "sensor.avsc").write_text(json.dumps(SCHEMA))
    (folder / "failures.avsc").write_text(json.dumps(LABEL_SCHEMA))
    (folder / "sensor.toml").write_text(DECLARATION + LABELS_DECLARATION)
    monkeypatch.setenv("EDML_PIPELINES_DIR", str(folder))
    bound = bind_pipeline(load_pipeline("sensor"))
    s = pipeline_settings(settings, bound.pipeline)
    create_topics(s)

    good = [reading(i) for i in range(120)]
    broken = [reading(900, humidity_pct=150), reading(902, temperature_c=80.0)]
    model = SensorModel()
    risk = model._serve({"temperature": np.array([r["temperature_c"] for r in good], np.float32),
                         "humidity_pct": np.array([r["humidity_pct"] for r in good], np.int64),
                         "site": np.array([r["site"] for r in good]),
                         "battery_v": np.array([r["battery_v"] for r in good])})["risk"].numpy()
    failed = {r["sensor_id"]: bool(i % 3 == 0) for i, r in enumerate(good)}  # the truth, some time later
    serdes = topic_serdes(s)
    events, labels = serdes.for_schema(s.topics.trips, bound.schema), serdes.for_schema(s.topics.labels, LABEL_SCHEMA)
    producer = make_producer(s)
    for r in good + broken:
        producer.produce(s.topics.trips, key=r["sensor_id"].encode(), value=events.encode(r))
    for key, value in failed.items():
        producer.produce(s.topics.labels, key=key.encode(), value=labels.encode(
            {"sensor_id": key, "failed": value, "reported_at": 1_767_312_000_000}))
    assert producer.flush(30) == 0

    archive, out = tmp_path / "archive", tmp_path / "out"
    recorded = edml(settings, "record", "--pipeline", "sensor", "--out", str(archive), "--stop-at-end")
    assert recorded.returncode == 0, recorded.stderr[-3000:]
    assert "archived 122 events, 120 labels" in recorded.stdout
    reader = ArchiveReader(archive)
    assert reader.topic("events") == s.topics.trips and reader.topic("labels") == s.topics.labels

    model_dir = write_model(tmp_path / "sensor-model")
    proc = edml(settings, "replay", "--pipeline", "sensor", "--input", str(archive), "--model", str(model_dir),
                "--out", str(out), "--gate")
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "replayed 122 events of pipeline sensor" in proc.stdout
    assert "dead letters: 2 (out-of-range: 2)" in proc.stdout
    assert "no champion to compare with: candidate sensor-model log loss" in proc.stdout

    replayed = {p["sensor_id"]: p for p in read_predictions(out / "predictions.csv")}
    assert set(replayed) == set(failed), "the declared and the inferred range dead-letter the broken readings"
    for i, r in enumerate(good):
        p = replayed[r["sensor_id"]]
        assert p["risk"] == pytest.approx(float(risk[i]), rel=1e-5)
        assert p["band"] == pytest.approx([float(risk[i]), 1 - float(risk[i])], rel=1e-5), "both outputs"
        assert p["event_time"] == r["read_at"] and p["model_name"] == "sensor-health"
    letters = [json.loads(line) for line in (out / "dead_letters.jsonl").read_text().splitlines()]
    assert [(d["key"], d["error_kind"], d["message"]) for d in letters] == [
        ("s-0900", "out-of-range", "humidity_pct 150 is out of range 0..100"),
        ("s-0902", "out-of-range", "sensor-health sensor-model: temperature_c 80.0 is out of range -15..45")]

    # the declared alert rule fires in replay as it does live: on the champion's predictions
    fired = sorted(r["sensor_id"] for i, r in enumerate(good) if risk[i] >= 0.4 and r["site"] == "north")
    alerts = read_predictions(out / "alerts.csv")
    assert fired and sorted(a["sensor_id"] for a in alerts) == fired
    assert {a["rule"] for a in alerts} == {"risky-north"} and f"alerts: {len(fired)} ->" in proc.stdout

    # the report's figures are the binary ones, computed from the archive's labels by key
    summary = json.loads((out / "summary.json").read_text())
    figures = summary["versions"][0]["figures"]
    y = np.array([failed[r["sensor_id"]] for r in good], dtype=np.float64)
    p = np.clip(risk.astype(np.float64), 1e-15, 1 - 1e-15)
    expected = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    print(f"[sensor replay] {figures}")
    assert summary["labels"] == 120 and summary["versions"][0]["with_label"] == 120
    assert figures["log_loss"] == pytest.approx(expected, rel=1e-5)
    assert figures["accuracy"] == pytest.approx(float(np.mean((risk >= 0.5) == (y > 0.5))), rel=1e-9)
    assert "| version | role | predictions | with label | log loss | ROC AUC |" in (out / "report.md").read_text()

    # the taxi example's generator is not this pipeline's
    generated = edml(settings, "record", "--pipeline", "sensor", "--generate", "10", "--out", str(tmp_path / "g"))
    assert generated.returncode == 2 and "--generate makes the taxi pipeline's example trips" in generated.stderr
