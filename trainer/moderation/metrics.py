"""Classification measures, the baselines, and the reference distributions of the comment classifier."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from edml.trainer.metrics import _categorical_reference, _numeric_reference

# What a moderator would first put in a word filter: blatant insults and spam markers.
KEYWORDS = (
    "idiot",
    "moron",
    "loser",
    "stupid",
    "shut up",
    "kill yourself",
    "http",
    "www",
    "buy",
    "free",
    "click",
    "cheap",
    "earn $",
)
_KEYWORDS_RE = re.compile("|".join(re.escape(k) for k in KEYWORDS))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); raises ValueError without both classes."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC needs both classes, got {n_pos} positive and {n_neg} negative")
    # Mann-Whitney U on ranks, tied scores sharing their mean rank
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    mean_rank = upper - (counts - 1) / 2.0
    ranks = mean_rank[inverse]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities ``p``."""
    y = np.asarray(labels, dtype=np.float64)
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)))


def precision_recall(labels: np.ndarray, p: np.ndarray, threshold: float) -> tuple[float, float]:
    """Precision and recall of flagging ``p >= threshold`` (precision 1.0 when nothing is flagged)."""
    y = np.asarray(labels, dtype=bool)
    flagged = np.asarray(p) >= threshold
    tp = int((flagged & y).sum())
    precision = tp / int(flagged.sum()) if flagged.any() else 1.0
    recall = tp / int(y.sum()) if y.any() else 1.0
    return precision, recall


def keyword_rule(texts: list[str]) -> np.ndarray:
    """The keyword baseline: 1.0 for a text containing any of :data:`KEYWORDS` (any case), else 0.0."""
    return np.array([1.0 if _KEYWORDS_RE.search(t.lower()) else 0.0 for t in texts])


def word_count(texts: list[str]) -> np.ndarray:
    """Words (whitespace-separated) per text."""
    return np.array([len(t.split()) for t in texts], dtype=np.float64)


def reference_distributions(
    texts: list[str], communities: list[str], removed: np.ndarray, p_removed: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Training distributions that live traffic is compared against, in the trainer's format.

    The text itself is described by its length in characters (``text_chars``) and in words
    (``text_words``); ``community`` is categorical; ``removed`` (the label) and ``p_removed``
    (the model's output on the training comments) show a change in what is posted or decided.
    """
    return {
        "text_chars": _numeric_reference(np.array([len(t) for t in texts], dtype=np.float64)),
        "text_words": _numeric_reference(word_count(texts)),
        "community": _categorical_reference(list(communities)),
        "removed": _categorical_reference([bool(v) for v in removed]),
        "p_removed": _numeric_reference(np.asarray(p_removed, dtype=np.float64)),
    }
