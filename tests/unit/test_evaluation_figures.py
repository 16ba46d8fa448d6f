"""Binary-classification figures of a score window: AUC, log loss, accuracy, precision and recall."""

from __future__ import annotations

import math

import numpy as np
import pytest
from edml.evaluation.promotion import compare
from edml.evaluation.windows import ErrorAccumulator, emit_score_window
from edml.schemas.records import Evaluation, ScoreWindow

from edml.pipelines.figures import BINARY, binary_figures, label_value, roc_auc

SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2])
LABELS = np.array([1, 1, 0, 1, 0, 1, 0, 0])


def test_auc_equals_the_share_of_positive_negative_pairs_ranked_right() -> None:
    # positives 0.9, 0.8, 0.6, 0.4; negatives 0.7, 0.55, 0.3, 0.2. Pairs (pos > neg), by positive:
    # 0.9 beats 4, 0.8 beats 4, 0.6 beats 3 (not 0.7), 0.4 beats 2 (0.3, 0.2) -> 13 of 16
    assert roc_auc(SCORES, LABELS) == pytest.approx(13 / 16)


def test_tied_scores_count_half_and_one_class_has_no_auc() -> None:
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5
    assert roc_auc(np.array([0.2, 0.9, 0.9]), np.array([0, 1, 0])) == pytest.approx(0.75)
    assert roc_auc(np.array([0.2, 0.9]), np.array([1, 1])) is None


def test_log_loss_accuracy_precision_and_recall_at_the_threshold() -> None:
    f = binary_figures(SCORES, LABELS, threshold=0.5)
    expected_loss = -np.mean([math.log(p) if y else math.log(1 - p) for p, y in zip(SCORES, LABELS, strict=True)])
    assert f["log_loss"] == pytest.approx(expected_loss)
    # called positive (>= 0.5): 0.9, 0.8, 0.7, 0.6, 0.55 -> 3 right of 5; positives 4, 3 of them called
    assert (f["precision"], f["recall"]) == (pytest.approx(3 / 5), pytest.approx(3 / 4))
    assert f["accuracy"] == pytest.approx((3 + 2) / 8)  # 3 true positives, 2 true negatives (0.3, 0.2)
    high = binary_figures(SCORES, LABELS, threshold=0.85)
    assert (high["precision"], high["recall"]) == (1.0, pytest.approx(1 / 4))
    assert binary_figures(SCORES, LABELS, threshold=0.95)["precision"] is None  # nothing called positive


def test_a_confident_miss_costs_much_but_finitely() -> None:
    assert math.isfinite(binary_figures(np.array([1.0]), np.array([0]), 0.5)["log_loss"] or math.inf)


def test_labels_may_be_booleans_or_numbers() -> None:
    assert (label_value(True), label_value(False), label_value(1), label_value(0.0)) == (1.0, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        label_value("yes")


def _evaluation(score: float, label: int, version: str = "v1") -> Evaluation:
    return Evaluation("k", "evaluated", "fraud", version, "champion", 0, 1, float(label), score, score - label)


def test_a_binary_window_carries_the_figures_and_the_threshold() -> None:
    acc = ErrorAccumulator(BINARY, threshold=0.5)
    stats = acc.empty()
    for score, label in zip(SCORES, LABELS, strict=True):
        acc.add(stats, _evaluation(float(score), int(label)))
    [window] = emit_score_window(0, 10, acc.copy(stats), 0)
    assert window.roc_auc == pytest.approx(13 / 16) and window.threshold == 0.5
    assert (window.precision, window.recall) == (pytest.approx(3 / 5), pytest.approx(3 / 4))
    assert window.mae == pytest.approx(float(np.mean(np.abs(SCORES - LABELS))))  # of score minus label


def _binary_window(version: str, role: str, start: int, log_loss: float, mae: float) -> ScoreWindow:
    return ScoreWindow("fraud", version, role, start, start + 10, 100, mae, mae, 0.0, mae, 0, log_loss=log_loss,
                       roc_auc=0.8, accuracy=0.7, precision=0.6, recall=0.5, threshold=0.5)


def test_binary_promotion_compares_log_loss_not_mae() -> None:
    # v2 has the lower log loss but the higher MAE: the task's loss decides
    windows = [_binary_window("v1", "champion", s, 0.50, 0.30) for s in range(0, 40, 10)]
    windows += [_binary_window("v2", "challenger", s, 0.40, 0.35) for s in range(0, 40, 10)]
    c = compare(windows, "fraud", "v1", "v2", last=4, margin=0.05)
    assert c.metric == "log_loss" and c.challenger_wins
    assert (c.champion.loss, c.challenger.loss) == (0.50, 0.40)
    assert "log loss" in c.verdict()
