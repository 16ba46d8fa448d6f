"""How far predictions are from labels: regression and binary-classification figures, pure functions.

Regression: MAE, RMSE, bias (mean of prediction minus label) and the 90th percentile of the
absolute error. Binary classification (labels 0/1, predictions scores in [0, 1]): log loss,
ROC AUC, and accuracy, precision and recall of ``score >= threshold``. Every function takes
numpy arrays of equal length and returns plain floats (None where a figure is undefined, such
as the AUC of labels of one class).
"""

from __future__ import annotations

import math

import numpy as np

REGRESSION = "regression"
BINARY = "binary"
# the figure a gate compares, per task: lower is better for both
LOSS = {REGRESSION: "mae", BINARY: "log_loss"}
_EPS = 1e-15


def regression_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE, bias and p90 absolute error of ``predicted`` against ``actual``."""
    if not len(predicted):
        return {"mae": None, "rmse": None, "bias": None, "p90_abs_error": None}
    err = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    abs_err = np.abs(err)
    return {"mae": float(abs_err.mean()), "rmse": float(math.sqrt(float(np.mean(err**2)))),
            "bias": float(err.mean()), "p90_abs_error": float(np.percentile(abs_err, 90))}


def roc_auc(score: np.ndarray, label: np.ndarray) -> float | None:
    """The area under the ROC curve (ties count half); None when the labels are all of one class."""
    label = np.asarray(label) > 0.5
    positives, negatives = int(label.sum()), int((~label).sum())
    if not positives or not negatives:
        return None
    # Mann-Whitney U with average ranks for ties
    order = np.argsort(score, kind="mergesort")
    ranked = np.asarray(score, dtype=np.float64)[order]
    ranks = np.empty(len(ranked), dtype=np.float64)
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1] == ranked[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[label].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def binary_metrics(score: np.ndarray, label: np.ndarray, threshold: float = 0.5) -> dict[str, float | None]:
    """Log loss, ROC AUC, and accuracy, precision and recall at ``threshold`` of scores against 0/1 labels."""
    if not len(score):
        return {"log_loss": None, "roc_auc": None, "accuracy": None, "precision": None, "recall": None}
    p = np.clip(np.asarray(score, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(label, dtype=np.float64) > 0.5
    log_loss = float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))
    predicted = np.asarray(score, dtype=np.float64) >= threshold
    true_positives = int((predicted & y).sum())
    return {
        "log_loss": log_loss,
        "roc_auc": roc_auc(np.asarray(score, dtype=np.float64), y),
        "accuracy": float((predicted == y).mean()),
        "precision": true_positives / int(predicted.sum()) if predicted.any() else None,
        "recall": true_positives / int(y.sum()) if y.any() else None,
    }


def task_metrics(task: str, predicted: np.ndarray, actual: np.ndarray, threshold: float = 0.5) \
        -> dict[str, float | None]:
    """The figures of ``task`` (regression or binary)."""
    if task == BINARY:
        return binary_metrics(predicted, actual, threshold)
    if task == REGRESSION:
        return regression_metrics(predicted, actual)
    raise ValueError(f"unknown task {task!r}: regression or binary")
