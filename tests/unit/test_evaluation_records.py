"""The evaluation's records evolve without losing what older producers wrote."""

from __future__ import annotations

import json
from pathlib import Path

from edml.evaluation.drift import parse_reference
from edml.schemas.records import Evaluation, ScoreWindow
from edml.schemas.serde import AvroSerde, evaluation_serde, score_window_serde

HISTORY = Path(__file__).resolve().parents[2] / "schemas" / "avro" / "history"


def test_an_evaluation_written_before_keys_were_generic_reads_as_key_actual_predicted_error() -> None:
    old = AvroSerde(json.loads((HISTORY / "Evaluation.v1.avsc").read_text()), None)
    payload = old.encode({"trip_id": "t-1", "outcome": "evaluated", "model_name": "m", "model_version": "v1",
                          "role": "champion", "event_time": 1, "observed_time": 2, "actual_duration_s": 600.0,
                          "predicted_duration_s": 650.0, "error_s": 50.0})
    assert evaluation_serde().decode(payload) == Evaluation("t-1", "evaluated", "m", "v1", "champion", 1, 2, 600.0,
                                                            650.0, 50.0)


def test_a_score_window_without_binary_figures_reads_them_as_null() -> None:
    old = AvroSerde(json.loads((HISTORY / "ScoreWindow.v1.avsc").read_text()), None)
    payload = old.encode({"model_name": "m", "model_version": "v1", "role": "champion", "window_start": 0,
                          "window_end": 10, "count": 3, "mae": 1.0, "rmse": 2.0, "bias": 0.5, "p90_abs_error": 3.0,
                          "revision": 1})
    window = score_window_serde().decode(payload)
    assert (window.mae, window.revision, window.log_loss, window.roc_auc, window.threshold) == (1.0, 1, None, None,
                                                                                                  None)
    binary = ScoreWindow("m", "v1", "champion", 0, 10, 3, 0.3, 0.4, 0.1, 0.5, 0, 0.45, 0.8, 0.7, 0.6, 0.5, 0.5)
    assert score_window_serde().decode(score_window_serde().encode(binary)) == binary


def test_a_label_read_as_a_number_finds_its_category_however_the_reference_spells_it() -> None:
    ref = parse_reference({"flag": {"kind": "categorical", "fractions": {"0": 0.5, "1": 0.5}},
                           "ok": {"kind": "categorical", "fractions": {"true": 0.5, "false": 0.5}}}, "t")
    flag, ok = ref.features["flag"], ref.features["ok"]
    assert [flag.bin_of(v) for v in (0.0, 1.0, 1, True, 2.0)] == [0, 1, 1, 1, None]
    assert [ok.bin_of(v) for v in (True, False)] == [0, 1]
