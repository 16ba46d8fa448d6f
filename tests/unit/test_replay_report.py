"""Replay report figures (MAE, RMSE, by hour, version differences), files, and the gate's decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edml.replay.file_io import PredictionFileError, predictions_csv, read_predictions
from edml.replay.gate import GateUndecidable, decide
from edml.replay.report import VersionStats, build_report, version_diff, version_stats, write_report
from edml.replay.run import ReplayResult
from edml.schemas.records import Prediction

from edml.core.errors import OperatorError

HOUR = 3_600_000


def pred(trip: str, value: float, version: str = "v1", role: str = "champion", hour: int = 0) -> Prediction:
    return Prediction(trip_id=trip, predicted_duration_s=value, model_name="trip-duration", model_version=version,
                      event_time=1_704_067_200_000 + hour * HOUR, scored_at=1, latency_ms=0.0, role=role)


def stats(version: str, mae: float | None, role: str = "champion") -> VersionStats:
    return VersionStats(version, role, 100, 0 if mae is None else 100, mae, None if mae is None else mae * 1.5,
                        (None,) * 24)


def result(tmp_path: Path, predictions: int) -> ReplayResult:
    return ReplayResult(archive=tmp_path / "archive", out_dir=tmp_path, events=predictions, predictions=predictions,
                        dead_letters=2, seconds=0.5, predictions_path=tmp_path / "predictions.csv",
                        dead_letters_path=tmp_path / "dead_letters.jsonl", champion="v1", challengers=("v2",),
                        dead_letter_kinds={"bad-magic": 2})


def test_mae_rmse_and_mae_by_hour() -> None:
    actuals = {"a": 100.0, "b": 200.0, "c": 300.0}
    preds = [pred("a", 110.0, hour=8), pred("b", 170.0, hour=8), pred("c", 300.0, hour=17), pred("x", 1.0)]
    s = version_stats("v1", "champion", preds, actuals)
    assert (s.predictions, s.with_actual) == (4, 3)
    assert s.mae == pytest.approx((10 + 30 + 0) / 3)
    assert s.rmse == pytest.approx(((100 + 900 + 0) / 3) ** 0.5)
    assert s.mae_by_hour[8] == pytest.approx(20.0) and s.mae_by_hour[17] == 0.0
    assert s.mae_by_hour[0] is None, "trip x has no actual duration"


def test_differences_between_versions_count_trips_beyond_the_threshold() -> None:
    base = [pred("a", 100.0), pred("b", 100.0), pred("c", 100.0), pred("d", 100.0)]
    other = [pred("a", 105.0, "v2"), pred("b", 111.0, "v2"), pred("c", 60.0, "v2"), pred("e", 1.0, "v2")]
    d = version_diff("v2", other, "v1", base, threshold=0.10)
    assert (d.compared, d.differing) == (3, 2)
    assert d.max_relative == pytest.approx(0.40)


def test_report_files_summary_and_plots(tmp_path: Path) -> None:
    actuals = {f"t{i}": 100.0 + i for i in range(50)}
    preds = [pred(f"t{i}", 100.0 + i + 5, hour=i % 24) for i in range(50)]
    preds += [pred(f"t{i}", 100.0 + i + (30 if i < 10 else 0), "v2", "challenger", hour=i % 24) for i in range(50)]
    report = build_report(result(tmp_path, 100), preds, actuals, diff_threshold=0.2)
    assert [(s.version, s.role) for s in report.versions] == [("v1", "champion"), ("v2", "challenger")]
    assert report.stats("v1").mae == pytest.approx(5.0)
    assert report.stats("v2").mae == pytest.approx(30 * 10 / 50)
    assert report.diffs[0].compared == 50
    md = write_report(report, preds, actuals, tmp_path, "md").read_text()
    print(md)
    assert "| v1 | champion | 50 | 50 | 5.0 | 5.0 |" in md
    assert "![MAE by hour of day](mae_by_hour.png)" in md and "dead letters: 2 (bad-magic: 2)" in md
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["versions"][1]["mae"] == pytest.approx(6.0) and summary["events_per_s"] == 200.0
    html = write_report(report, preds, actuals, tmp_path, "html").read_text()
    assert "<img src='predicted_vs_actual.png'" in html and "<td>v2</td>" in html
    for png in ("predicted_vs_actual.png", "error_histogram.png", "mae_by_hour.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_gate_refuses_a_candidate_worse_beyond_the_tolerance() -> None:
    champion = stats("v1", 200.0)
    assert decide(stats("v2", 209.0, "challenger"), champion, 0.05).passed
    refused = decide(stats("v2", 211.0, "challenger"), champion, 0.05)
    assert not refused.passed
    assert refused.reason.startswith("replay gate refused: candidate v2 MAE 211.0 s vs champion v1 MAE 200.0 s")
    assert "+5.5%" in refused.reason and "\n" not in refused.reason
    assert decide(stats("v2", 150.0, "challenger"), champion, 0.0).passed, "better always passes"
    assert decide(stats("v2", 300.0), None).passed, "no champion yet"
    with pytest.raises(GateUndecidable):
        decide(stats("v2", None), champion)
    with pytest.raises(OperatorError, match="tolerance"):
        decide(stats("v2", 1.0), champion, -0.1)


def test_predictions_file_round_trip_is_exact_and_sorted(tmp_path: Path) -> None:
    preds = [pred("b", 1 / 3, "v2", "challenger"), pred("b", 2 / 3), pred("a", 1e-17)]
    path = tmp_path / "p.csv"
    path.write_bytes(predictions_csv(preds))
    back = read_predictions(path)
    assert [(p.trip_id, p.role) for p in back] == [("a", "champion"), ("b", "champion"), ("b", "challenger")]
    assert back[0].predicted_duration_s == 1e-17 and back[2].predicted_duration_s == 1 / 3
    path.write_text("not,a,predictions,file\n")
    with pytest.raises(PredictionFileError, match="not a replay predictions file"):
        read_predictions(path)
