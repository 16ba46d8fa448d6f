"""Replaying the committed archive with the committed model gives the golden predictions, every time.

Fixtures: ``tests/fixtures/replay`` (see its ``make_fixtures.py``). If a change to the scoring code
(decode, validate, feature columns, model call, encode) changes a prediction, these tests fail.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from edml.replay.archive import ArchiveError, ArchiveReader
from edml.replay.file_io import read_predictions
from edml.replay.gate import GateUndecidable, decide
from edml.replay.models import ModelUnavailable, load_version
from edml.replay.report import Judging, build_report, pipeline_labels, write_report
from edml.replay.run import replay_archive, replay_serdes

from edml.core.config import Settings
from edml.pipelines.bound import open_pipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "replay"
ARCHIVE = FIXTURES / "archive"
STORE = f"file://{FIXTURES / 'artifacts'}"
NAME, VERSION = "trip-duration", "fixture-v1"
REL_TOL = 1e-5  # float noise across CPUs; any real change of the scoring moves values far more
JUDGING = Judging("regression", "predicted_duration_s", "duration_s")
LINEAGE = ("trip_id", "model_name", "model_version", "role", "event_time", "scored_at", "latency_ms")


def labels_of(archive: Path) -> dict[str, float]:
    # the archive predates the role names events and labels: its labels are what it recorded from the
    # taxi pipeline's label topic
    bound = open_pipeline("taxi", Settings())
    return pipeline_labels(ArchiveReader(archive), bound, replay_serdes(Settings(), bound))


@pytest.fixture(scope="module")
def fixture_model(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a LoadedModel
    return load_version(STORE, NAME, VERSION, tmp_path_factory.mktemp("models"))


def test_replay_matches_the_golden_predictions(fixture_model, tmp_path: Path) -> None:  # noqa: ANN001
    result = replay_archive(ARCHIVE, fixture_model, tmp_path / "out")
    golden = read_predictions(FIXTURES / "golden_predictions.csv")
    got = read_predictions(result.predictions_path)
    print(f"[golden] {result.events} events, {result.predictions} predictions, {result.dead_letters} dead letters "
          f"{result.dead_letter_kinds}, {result.events_per_s:,.0f} events/s")
    assert len(golden) == 300 and len(got) == len(golden)
    worst = 0.0
    for g, p in zip(golden, got, strict=True):
        assert [p[c] for c in LINEAGE] == [g[c] for c in LINEAGE]
        rel = abs(p["predicted_duration_s"] - g["predicted_duration_s"]) / abs(g["predicted_duration_s"])
        worst = max(worst, rel)
        assert math.isclose(p["predicted_duration_s"], g["predicted_duration_s"], rel_tol=REL_TOL), p["trip_id"]
    print(f"[golden] largest relative difference from the golden file: {worst:.2e}")
    # dead letters are reported, not fatal
    assert result.events == 303 and result.dead_letters == 3
    assert result.dead_letter_kinds == {"bad-magic": 1, "null-value": 1, "out-of-range": 1}
    assert result.dead_letters_path.read_text() == (FIXTURES / "golden_dead_letters.jsonl").read_text()


def test_two_replays_write_byte_identical_files(fixture_model, tmp_path: Path) -> None:  # noqa: ANN001
    first = replay_archive(ARCHIVE, fixture_model, tmp_path / "one")
    second = replay_archive(ARCHIVE, fixture_model, tmp_path / "two", batch_size=1000)
    assert first.predictions_path.read_bytes() == second.predictions_path.read_bytes()
    assert first.dead_letters_path.read_bytes() == second.dead_letters_path.read_bytes()
    # scored_at comes from the archive (each event's Kafka timestamp), not the wall clock
    stamps = {m.key.decode(): m.timestamp_ms for m in ArchiveReader(ARCHIVE).messages("trips")}
    for p in read_predictions(first.predictions_path):
        assert p["scored_at"] == stamps[p["trip_id"]] and p["latency_ms"] == 0.0


def test_replay_report_and_gate_on_the_fixture(fixture_model, tmp_path: Path) -> None:  # noqa: ANN001
    # the same model as champion and shadow challenger: identical predictions, the gate passes
    result = replay_archive(ARCHIVE, fixture_model, tmp_path / "out", [fixture_model])
    predictions = read_predictions(result.predictions_path)
    actuals = labels_of(ARCHIVE)
    report = build_report(result, predictions, actuals, JUDGING)
    path = write_report(report, predictions, actuals, tmp_path / "out")
    champion, challenger = report.stats(VERSION, "champion"), report.stats(VERSION, "challenger")
    mae, rmse = champion.figures["mae"], champion.figures["rmse"]
    print(f"[report] MAE {mae:.1f} s RMSE {rmse:.1f} s on {champion.with_label} trips")
    assert len(actuals) == 300 and champion.with_label == 300
    assert champion.figures == challenger.figures and 50 < mae < 1000
    assert rmse >= mae and champion.figures["p90_abs_error"] >= mae * 0.5
    assert report.diffs[0].compared == 300 and report.diffs[0].differing == 0
    assert decide(challenger, champion, 0.05).passed
    for png in ("predicted_vs_actual.png", "error_histogram.png", "error_by_hour.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| fixture-v1 | champion | 300 | 300 |" in path.read_text()


def test_without_labels_there_are_no_errors_and_the_gate_cannot_decide(fixture_model, tmp_path: Path) -> None:  # noqa: ANN001
    archive = tmp_path / "trips-only"
    shutil.copytree(ARCHIVE, archive)
    index = ArchiveReader(archive)
    trips_only = [s for s in index.segments if s.role == "trips"]
    from edml.replay.archive import _write_index

    _write_index(archive, trips_only)
    result = replay_archive(archive, fixture_model, tmp_path / "out")
    predictions = read_predictions(result.predictions_path)
    actuals = labels_of(archive)
    report = build_report(result, predictions, actuals, JUDGING)
    path = write_report(report, predictions, actuals, tmp_path / "out", fmt="html")
    assert actuals == {} and report.versions[0].loss is None
    assert "no labels were recorded" in path.read_text()
    assert not (tmp_path / "out" / "error_histogram.png").exists()
    with pytest.raises(GateUndecidable, match="no labels"):
        decide(report.versions[0], None)


def test_unknown_versions_and_damaged_archives_are_operator_errors(fixture_model, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(ModelUnavailable, match=r"trip-duration has no version 'v9' in .*known: fixture-v1"):
        load_version(STORE, NAME, "v9", tmp_path)
    archive = tmp_path / "archive"
    shutil.copytree(ARCHIVE, archive)
    segment = archive / "trips" / "p1" / "000000.avro"
    intact = segment.read_bytes()
    segment.write_bytes(intact[:3000])
    with pytest.raises(ArchiveError, match=rf"{segment}: truncated at byte 3000"):
        replay_archive(archive, fixture_model, tmp_path / "out")
    # damage found only while reading: the replay fails cleanly and leaves no partial output
    damaged = bytearray(intact)
    damaged[4000:4040] = b"\xff" * 40
    segment.write_bytes(bytes(damaged))
    with pytest.raises(ArchiveError, match=rf"{segment}: damaged at byte \d+"):
        replay_archive(archive, fixture_model, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
