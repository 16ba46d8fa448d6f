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


def test_predictions_of_a_model_published_later_are_read_once_the_model_topic_names_their_schema() -> None:
    import pytest
    from edml.evaluation.judged import LearningSerde
    from edml.schemas.serde import DecodeError

    lineage = [{"name": "model_name", "type": "string"}, {"name": "model_version", "type": "string"}]
    reader = {"type": "record", "name": "P", "fields": [{"name": "id", "type": "string"},
                                                        {"name": "score", "type": "double"}, *lineage]}
    later = {"type": "record", "name": "P", "fields": [{"name": "id", "type": "string"},
                                                       {"name": "score", "type": "double"},
                                                       {"name": "band", "type": {"type": "array", "items": "double"}},
                                                       *lineage]}
    payload = AvroSerde(later, None).encode({"id": "a", "score": 0.7, "band": [0.7, 0.3], "model_name": "m",
                                             "model_version": "v2"})
    on_topic: list[dict] = []
    asked: list[int] = []

    def refresh() -> list[dict]:
        asked.append(1)
        return list(on_topic)

    serde = LearningSerde(AvroSerde(reader, None), refresh)
    with pytest.raises(DecodeError, match="fingerprint"):
        serde.decode(payload)  # the model topic does not know it yet
    on_topic.append(later)
    with pytest.raises(DecodeError):
        serde.decode(payload)  # asked again only a minute later
    serde._refreshed_at -= LearningSerde.REFRESH_EVERY_S
    assert serde.decode(payload) == {"id": "a", "score": 0.7, "model_name": "m", "model_version": "v2"}
    assert serde.decode(payload)["score"] == 0.7 and len(asked) == 2  # learnt: no more asking
