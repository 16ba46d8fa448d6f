"""Entry points of the moderation example: generate a comment data set, train the classifier.

``generate_command`` and ``train_command`` are what ``edml generate --pipeline moderation`` and
``edml train --pipeline moderation`` call; each returns the lines to show the operator and
raises :class:`~edml.core.errors.OperatorError` (one line, how to fix it) for a bad argument or
data set. ``python -m edml.trainer.moderation generate|train`` runs them without the edml CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

from edml.core.errors import OperatorError

DEFAULT_COMMENTS = 20_000


def generate_command(out: Path | str, n: int = DEFAULT_COMMENTS, seed: int = 0, span_days: float = 7.0) -> str:
    """Generate ``n`` comments and their decisions into the folder ``out`` (comments.avro, decisions.avro)."""
    from edml.trainer.moderation.comments import REMOVABLE, generate_comments
    from edml.trainer.moderation.datafiles import write_dataset

    if n < 1:
        raise OperatorError(f"--n must be at least 1, got {n}")
    if span_days <= 0:
        raise OperatorError(f"--span-days must be > 0, got {span_days}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OperatorError(f"--out {out} is a file; give a folder for comments.avro and decisions.avro")
    generated = generate_comments(n, seed, span_days=span_days)
    files = write_dataset(out, generated, seed)
    removed = sum(g.decision.removed for g in generated)
    flagged = sum(g.kind in REMOVABLE for g in generated)
    size_mb = (files.comments.stat().st_size + files.decisions.stat().st_size) / 1e6
    return (
        f"wrote {n} comments to {files.comments} and their decisions to {files.decisions} "
        f"({size_mb:.1f} MB, seed {seed}): {removed / n:.1%} removed, {flagged / n:.1%} abusive or spam"
    )


def train_command(
    data: Path | str,
    out: Path | str,
    epochs: int = 6,
    seed: int = 0,
    max_rows: int | None = None,
    verbose: int | str = 0,
) -> str:
    """Train the comment classifier on the data set folder ``data``; export it into ``out`` and report it."""
    from edml.trainer.moderation.datafiles import read_labelled
    from edml.trainer.moderation.train import MIN_COMMENTS, train_data

    if epochs < 1:
        raise OperatorError(f"--epochs must be at least 1, got {epochs}")
    # A missing or corrupt data set fails here, in one line, before TensorFlow loads.
    if len(read_labelled(data, max_rows=MIN_COMMENTS)) < MIN_COMMENTS:
        raise OperatorError(f"data set {data} holds fewer than {MIN_COMMENTS} decided comments; training needs more")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = train_data(data, out, epochs=epochs, seed=seed, max_rows=max_rows, verbose=verbose)
    m = result.metrics
    return (
        f"held-out ({m.n_test} comments, {m.test_positive_rate:.1%} removed):\n"
        f"  model            ROC AUC {m.roc_auc:.3f}   log loss {m.log_loss:.3f}   "
        f"at p >= 0.8: precision {m.precision_at_alert:.2f} recall {m.recall_at_alert:.2f}\n"
        f"  keyword rule     ROC AUC {m.baseline_keyword_auc:.3f}                    "
        f"flagged: precision {m.baseline_keyword_precision:.2f} recall {m.baseline_keyword_recall:.2f}\n"
        f"  positive rate    ROC AUC {m.baseline_positive_rate_auc:.3f}   "
        f"log loss {m.baseline_positive_rate_log_loss:.3f}\n"
        f"trained on {m.n_train} comments in {m.train_seconds:.1f} s; SavedModel {m.model_bytes / 1e6:.1f} MB; "
        f"wrote {out}/saved_model, metrics.json, golden.json, reference.json"
    )
