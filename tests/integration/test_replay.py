"""Record live topics from a real broker, replay them, and compare with what `edml serve` predicted."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

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
    assert stats.messages == {"trips": 600, "dropoffs": 600}

    # the gate's champion is the model topic's desired version (v1); the candidate is v1 from the store
    proc = edml(settings, "replay", "--input", str(archive), "--model", "v1", "--out", str(tmp_path / "out"), "--gate")
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "replay gate passed: candidate v1 MAE" in proc.stdout and "vs champion v1 MAE" in proc.stdout
    replayed = read_predictions(tmp_path / "out" / "predictions.csv")
    champion = {p.trip_id: p for p in replayed if p.role == "champion"}
    challenger = {p.trip_id: p for p in replayed if p.role == "challenger"}
    assert set(champion) == set(live) == {t.pickup.trip_id for t in trips}
    worst = 0.0
    for trip_id, p in champion.items():
        served = live[trip_id]
        assert (p.model_name, p.model_version, p.event_time) == (served.model_name, served.model_version,
                                                                 served.event_time)
        assert challenger[trip_id].predicted_duration_s == p.predicted_duration_s
        worst = max(worst, abs(p.predicted_duration_s - served.predicted_duration_s) / served.predicted_duration_s)
        assert math.isclose(p.predicted_duration_s, served.predicted_duration_s, rel_tol=1e-6), trip_id
    exact = sum(p.predicted_duration_s == live[t].predicted_duration_s for t, p in champion.items())
    print(f"[live vs replay] {len(champion)} trips: {exact} bit-identical, largest relative difference {worst:.2e}")


def test_recorder_keeps_an_exact_copy_rolls_and_resumes(settings: Settings, tmp_path: Path) -> None:
    first, more = generate_trips(300, seed=22), generate_trips(200, seed=23)
    produce_trips(settings, first, with_dropoffs=True)
    archive = tmp_path / "archive"
    stats = record_topics(settings, archive, stop_at_end=True, max_segment_bytes=6_000)
    assert stats.messages == {"trips": 300, "dropoffs": 300}

    # `edml record` as an operator runs it: until SIGTERM; segments roll by age meanwhile
    recorder = subprocess.Popen([sys.executable, "-m", "edml.cli", "record", "--out", str(archive),
                                 "--max-segment-age", "0.5"], env=scorer_env(settings), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        produce_trips(settings, more, with_dropoffs=True)
        wait_until(lambda: _archived(archive) == {"trips": 500, "dropoffs": 500}, 60,
                   message="the recorder did not archive the new trips")
    finally:
        recorder.terminate()
        out, err = recorder.communicate(timeout=30)
    print(out)
    assert recorder.returncode == 0, err[-3000:]
    assert "archived 200 trips, 200 dropoffs" in out, "only the new messages"

    reader = ArchiveReader(archive)
    print(f"[recorder] {len(reader.segments)} segments: "
          f"{[(s.path, s.records) for s in reader.segments]}")
    for partition in range(settings.partitions):
        # finished segments are immutable: the resumed run wrote new ones after them
        segments = reader.segments_of("trips", partition)
        assert [s.sequence for s in segments] == list(range(len(segments))) and len(segments) >= 2
        assert [s.first_offset for s in segments[1:]] == [s.last_offset + 1 for s in segments[:-1]]
    for role, topic in (("trips", settings.topics.trips), ("dropoffs", settings.topics.labels)):
        on_kafka = sorted((m.partition, m.offset, m.key, m.value, m.timestamp_ms) for m in read_to_end(settings, topic))
        archived = [(m.partition, m.offset, m.key, m.value, m.timestamp_ms) for m in reader.messages(role)]
        assert archived == on_kafka, f"{role}: the archive is an exact copy, in (partition, offset) order"
        assert len(archived) == 500


def _archived(archive: Path) -> dict[str, int]:
    reader = ArchiveReader(archive)
    return {role: reader.count(role) for role in reader.roles()}
