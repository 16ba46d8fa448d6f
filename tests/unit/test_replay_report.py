"""Replay report figures (regression and binary), files, and the gate's decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edml.replay.file_io import PredictionFileError, predictions_csv, read_predictions
from edml.replay.gate import GateUndecidable, decide
from edml.replay.report import (
    Judging,
    VersionStats,
    build_report,
    judging_of,
    version_diff,
    version_stats,
    write_report,
)
from edml.replay.run import ReplayResult

from edml.core.errors import OperatorError
from edml.pipelines.figures import binary_figures, regression_figures, roc_auc

HOUR = 3_600_000
REGRESSION = Judging("regression", "estimate", "truth")
BINARY = Judging("binary", "score", "fraud", threshold=0.5)


def pred(key: str, value: Any, version: str = "v1", role: str = "champion", hour: int = 0,
         field: str = "estimate") -> dict[str, Any]:
    return {"id": key, "model_name": "m", "model_version": version, "role": role,
            "event_time": 1_704_067_200_000 + hour * HOUR, "scored_at": 1, "latency_ms": 0.0, field: value}


def stats(version: str, loss: float | None, role: str = "champion", task: str = "regression") -> VersionStats:
    name = "mae" if task == "regression" else "log_loss"
    return VersionStats(version, role, 100, 0 if loss is None else 100, task, {name: loss})


def result(tmp_path: Path, predictions: int) -> ReplayResult:
    return ReplayResult(archive=tmp_path / "archive", out_dir=tmp_path, events=predictions, predictions=predictions,
                        dead_letters=2, seconds=0.5, predictions_path=tmp_path / "predictions.csv",
                        dead_letters_path=tmp_path / "dead_letters.jsonl", champion="v1", challengers=("v2",),
                        dead_letter_kinds={"bad-magic": 2})


def test_regression_figures_and_error_by_hour() -> None:
    labels = {"a": 100.0, "b": 200.0, "c": 300.0}
    preds = [pred("a", 110.0, hour=8), pred("b", 170.0, hour=8), pred("c", 300.0, hour=17), pred("x", 1.0)]
    s = version_stats("v1", "champion", preds, labels, REGRESSION)
    assert (s.predictions, s.with_label) == (4, 3)
    assert s.figures["mae"] == pytest.approx((10 + 30 + 0) / 3) == s.loss
    assert s.figures["rmse"] == pytest.approx(((100 + 900 + 0) / 3) ** 0.5)
    assert s.figures["bias"] == pytest.approx((10 - 30 + 0) / 3)
    assert s.figures["p90_abs_error"] == pytest.approx(26.0)  # numpy's linear interpolation of 0, 10, 30
    assert s.error_by_hour[8] == pytest.approx(20.0) and s.error_by_hour[17] == 0.0
    assert s.error_by_hour[0] is None, "x has no label"


def test_binary_figures_against_hand_computed_values() -> None:
    score = np.array([0.9, 0.8, 0.3, 0.6, 0.2])
    label = np.array([1, 1, 0, 0, 1])
    m = binary_figures(score, label, threshold=0.5)
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.7, 0.4, 0.2]))
    assert m["log_loss"] == pytest.approx(expected_loss)
    # positives 0.9, 0.8, 0.2 vs negatives 0.3, 0.6: 4 of 6 pairs ordered right
    assert m["roc_auc"] == pytest.approx(4 / 6)
    assert m["accuracy"] == pytest.approx(3 / 5)  # predicted 1,1,0,1,0 vs 1,1,0,0,1
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5, "ties count half"
    assert roc_auc(np.array([0.1, 0.9]), np.array([1, 1])) is None, "one class: no AUC"
    assert regression_figures(np.zeros(0), np.zeros(0))["mae"] is None


def test_a_binary_pipeline_is_judged_by_its_score_field() -> None:
    labels = {"a": 1.0, "b": 0.0, "c": 1.0}
    preds = [pred("a", 0.9, field="score"), pred("b", 0.1, field="score"), pred("c", 0.4, field="score")]
    s = version_stats("v1", "champion", preds, labels, BINARY)
    assert s.with_label == 3 and s.loss == s.figures["log_loss"]
    assert s.figures["accuracy"] == pytest.approx(2 / 3) and s.figures["roc_auc"] == 1.0
    other = [pred("a", 0.95, "v2", field="score"), pred("b", 0.5, "v2", field="score")]
    d = version_diff("v2", other, "v1", preds, threshold=0.1, judging=BINARY)
    assert (d.compared, d.differing, d.relative) == (2, 1, False)
    assert d.max_difference == pytest.approx(0.4), "absolute for scores"


def test_differences_between_versions_count_keys_beyond_the_threshold() -> None:
    base = [pred("a", 100.0), pred("b", 100.0), pred("c", 100.0), pred("d", 100.0)]
    other = [pred("a", 105.0, "v2"), pred("b", 111.0, "v2"), pred("c", 60.0, "v2"), pred("e", 1.0, "v2")]
    d = version_diff("v2", other, "v1", base, threshold=0.10, judging=REGRESSION)
    assert (d.compared, d.differing, d.relative) == (3, 2, True)
    assert d.max_difference == pytest.approx(0.40)


def test_report_files_summary_and_plots(tmp_path: Path) -> None:
    labels = {f"t{i}": 100.0 + i for i in range(50)}
    preds = [pred(f"t{i}", 100.0 + i + 5, hour=i % 24) for i in range(50)]
    preds += [pred(f"t{i}", 100.0 + i + (30 if i < 10 else 0), "v2", "challenger", hour=i % 24) for i in range(50)]
    report = build_report(result(tmp_path, 100), preds, labels, REGRESSION, diff_threshold=0.2)
    assert [(s.version, s.role) for s in report.versions] == [("v1", "champion"), ("v2", "challenger")]
    assert report.stats("v1").loss == pytest.approx(5.0)
    assert report.stats("v2").loss == pytest.approx(30 * 10 / 50)
    assert report.diffs[0].compared == 50
    md = write_report(report, preds, labels, tmp_path, "md").read_text()
    print(md)
    assert "| v1 | champion | 50 | 50 | 5.0 | 5.0 | 5.0 | 5.0 |" in md
    assert "labels in the archive: 50 (truth, regression; judged: estimate)" in md
    assert "![Error by hour of day](error_by_hour.png)" in md and "dead letters: 2 (bad-magic: 2)" in md
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["versions"][1]["figures"]["mae"] == pytest.approx(6.0) and summary["events_per_s"] == 200.0
    html = write_report(report, preds, labels, tmp_path, "html").read_text()
    assert "<img src='predicted_vs_actual.png'" in html and "<td>v2</td>" in html
    for png in ("predicted_vs_actual.png", "error_histogram.png", "error_by_hour.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_binary_report_has_classification_columns(tmp_path: Path) -> None:
    labels = {f"t{i}": float(i % 2) for i in range(40)}
    preds = [pred(f"t{i}", 0.8 if i % 2 else 0.3, hour=i % 24, field="score") for i in range(40)]
    report = build_report(result(tmp_path, 40), preds, labels, BINARY)
    md = write_report(report, preds, labels, tmp_path, "md").read_text()
    assert "| version | role | predictions | with label | log loss | ROC AUC | accuracy | precision | recall |" in md
    assert "| v1 | champion | 40 | 40 |" in md and "| 1.000 | 1.000 | 1.000 | 1.000 |" in md
    assert "judged: score at threshold 0.5" in md
    assert not (tmp_path / "predicted_vs_actual.png").exists(), "a scatter of scores vs 0/1 says nothing"


def test_gate_refuses_a_candidate_worse_beyond_the_tolerance() -> None:
    champion = stats("v1", 200.0)
    assert decide(stats("v2", 209.0, "challenger"), champion, 0.05).passed
    refused = decide(stats("v2", 211.0, "challenger"), champion, 0.05)
    assert not refused.passed
    assert refused.reason.startswith("replay gate refused: candidate v2 MAE 211.0 vs champion v1 MAE 200.0")
    assert "+5.5%" in refused.reason and "\n" not in refused.reason
    assert decide(stats("v2", 150.0, "challenger"), champion, 0.0).passed, "better always passes"
    assert decide(stats("v2", 300.0), None).passed, "no champion yet"
    with pytest.raises(GateUndecidable):
        decide(stats("v2", None), champion)
    with pytest.raises(OperatorError, match="tolerance"):
        decide(stats("v2", 1.0), champion, -0.1)
    # a classifier is compared by log loss
    worse = decide(stats("v2", 0.40, "challenger", "binary"), stats("v1", 0.30, task="binary"), 0.05)
    assert not worse.passed and "log loss 0.4000 vs champion v1 log loss 0.3000" in worse.reason


def test_predictions_file_round_trip_is_exact_and_sorted(tmp_path: Path) -> None:
    preds = [pred("b", 1 / 3, "v2", "challenger"), pred("b", 2 / 3), pred("a", 1e-17)]
    preds[0]["probabilities"] = [0.25, 0.75]
    preds[1]["flag"] = True
    path = tmp_path / "p.csv"
    path.write_bytes(predictions_csv(preds, "id", ["estimate", "probabilities", "flag"]))
    back = read_predictions(path)
    assert [(p["id"], p["role"]) for p in back] == [("a", "champion"), ("b", "champion"), ("b", "challenger")]
    assert back[0]["estimate"] == 1e-17 and back[2]["estimate"] == 1 / 3
    assert back[2]["probabilities"] == [0.25, 0.75] and back[1]["flag"] is True
    assert back[0]["probabilities"] is None, "a version without an output has an empty cell"
    assert path.read_text().splitlines()[0] == \
        "id,model_name,model_version,role,event_time,scored_at,latency_ms,estimate,probabilities,flag"
    path.write_text("not,a,predictions,file\n")
    with pytest.raises(PredictionFileError, match="not a replay predictions file"):
        read_predictions(path)


def test_the_judged_field_must_be_one_of_the_predictions() -> None:
    from edml.pipelines.declaration import PipelineError, load_pipeline

    taxi = load_pipeline("taxi")
    assert judging_of(taxi, ["predicted_duration_s"]) == Judging("regression", "predicted_duration_s", "duration_s")
    with pytest.raises(PipelineError, match=r"pipeline taxi .*prediction = 'predicted_duration_s' is not a field "
                                            r"of the model's predictions \(risk\)"):
        judging_of(taxi, ["risk"])
