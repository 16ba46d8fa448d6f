"""How far predictions are from labels, per task: pure functions shared by live evaluation and replay.

Regression: MAE, RMSE, bias (mean of prediction minus label) and the 90th percentile of the
absolute error. Binary classification (labels 0/1, predictions scores in [0, 1]): log loss, ROC
AUC, and accuracy, precision and recall of ``score >= threshold``. Every function takes numpy
arrays of equal length and returns plain floats; a figure that is undefined (the AUC of labels of
one class, the precision without any positive call) is None.

A promotion or a replay gate compares one figure per task, lower is better: :data:`LOSS`.
"""

from __future__ import annotations

import math

import numpy as np

REGRESSION = "regression"
BINARY = "binary"
TASKS = (REGRESSION, BINARY)
LOSS = {REGRESSION: "mae", BINARY: "log_loss"}  # the figure a promotion or a gate compares, per task
LOSS_LABEL = {"mae": "MAE", "log_loss": "log loss"}
_EPS = 1e-15


def regression_figures(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE, bias and p90 absolute error of ``predicted`` against ``actual``."""
    if not len(predicted):
        return {"mae": None, "rmse": None, "bias": None, "p90_abs_error": None}
    err = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    abs_err = np.abs(err)
    return {"mae": float(abs_err.mean()), "rmse": float(math.sqrt(float(np.mean(err**2)))),
            "bias": float(err.mean()), "p90_abs_error": float(np.percentile(abs_err, 90))}


def roc_auc(score: np.ndarray, label: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U, ties count half); None with labels of one class."""
    positive = np.asarray(label, dtype=np.float64) > 0.5
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    values = np.asarray(score, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ranked = values[order]
    ranks = np.empty(len(ranked), dtype=np.float64)
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1] == ranked[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1  # tied scores share their average rank
        i = j + 1
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def binary_figures(score: np.ndarray, label: np.ndarray, threshold: float = 0.5) -> dict[str, float | None]:
    """Log loss, ROC AUC, and accuracy, precision and recall at ``threshold`` of scores against 0/1 labels."""
    if not len(score):
        return {"log_loss": None, "roc_auc": None, "accuracy": None, "precision": None, "recall": None}
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64) > 0.5
    p = np.clip(s, _EPS, 1 - _EPS)  # a confident miss costs much, not infinitely much
    called = s >= threshold
    hits = int((called & y).sum())
    return {
        "log_loss": float(-np.mean(np.where(y, np.log(p), np.log1p(-p)))),
        "roc_auc": roc_auc(s, y),
        "accuracy": float((called == y).mean()),
        "precision": hits / int(called.sum()) if called.any() else None,
        "recall": hits / int(y.sum()) if y.any() else None,
    }


def task_figures(task: str, predicted: np.ndarray, actual: np.ndarray, threshold: float = 0.5) \
        -> dict[str, float | None]:
    """The figures of ``task`` (regression or binary)."""
    if task == BINARY:
        return binary_figures(predicted, actual, threshold)
    if task == REGRESSION:
        return regression_figures(predicted, actual)
    raise ValueError(f"unknown task {task!r}: regression or binary")


def label_value(value: object) -> float:
    """A label as a number: booleans as 0/1, numbers as themselves; raises ValueError otherwise."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    raise ValueError(f"{value!r} is not a number")
