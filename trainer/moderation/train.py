"""Train the comment classifier, evaluate it against the baselines, export it.

Output folder (what the publisher packages and the scorer loads), as for the taxi model::

    saved_model/      the SavedModel, ``serving_default``: text (string [batch]) -> p_removed (float32 [batch])
    metrics.json      ROC AUC, log loss, precision/recall at the alert threshold, both baselines, sizes, seed
    golden.json       held-out comments and what the exported model returns for them
    reference.json    training distributions for drift checks (see moderation.metrics)

The baselines: the **positive rate** (every comment gets the training share of removals: AUC 0.5,
the log loss to beat) and a **keyword rule** (flag a comment holding a word from a short filter
list).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from edml.trainer.moderation.comments import Comment, generate_comments
from edml.trainer.moderation.metrics import (
    keyword_rule,
    log_loss,
    precision_recall,
    reference_distributions,
    roc_auc,
)

TEST_FRACTION = 0.2
MIN_COMMENTS = 50
N_GOLDEN = 16
ALERT_THRESHOLD = 0.8  # the moderation alert rule's threshold: precision and recall are reported at it
MAX_THREADS = 2  # the machine is shared; training on more gains little


@dataclass(frozen=True)
class ModerationMetrics:
    """What ``metrics.json`` holds (held-out figures unless named ``train_``)."""

    roc_auc: float
    log_loss: float
    mae: float  # mean |removed - p_removed|: the model folder's reader asks every model for an "mae"
    precision_at_alert: float
    recall_at_alert: float
    baseline_keyword_auc: float
    baseline_keyword_precision: float
    baseline_keyword_recall: float
    baseline_positive_rate_auc: float
    baseline_positive_rate_log_loss: float
    positive_rate: float  # share of training comments removed
    test_positive_rate: float
    n_train: int
    n_test: int
    epochs: int
    seed: int
    data_window_start: int
    data_window_end: int
    train_seconds: float
    model_bytes: int
    trainer_params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModerationTrainResult:
    """A finished training run: where its outputs are and how well it did."""

    out_dir: Path
    saved_model_dir: Path
    metrics: ModerationMetrics
    history: dict[str, list[float]]


@dataclass(frozen=True)
class ModerationTrainConfig:
    """Knobs of one training run."""

    epochs: int = 6
    seed: int = 0
    batch_size: int = 256
    learning_rate: float = 5e-3
    verbose: int | str = 0  # Keras fit verbosity


def limit_threads(threads: int = MAX_THREADS) -> None:
    """Run TensorFlow on at most ``threads`` threads, unless it is already running (then it keeps its pools)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:  # TensorFlow was initialised earlier in this process: its pools are fixed
        pass


def split_indices(n: int, seed: int, test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random train/test split of ``n`` rows (sorted indices)."""
    if n < MIN_COMMENTS:
        raise ValueError(f"need at least {MIN_COMMENTS} labelled comments to train and evaluate, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(2, int(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def train_comments(
    comments: list[Comment],
    removed: list[bool] | np.ndarray,
    out_dir: Path | str,
    config: ModerationTrainConfig,
    data_source: str = "",
) -> ModerationTrainResult:
    """Train on labelled comments in memory and write every output into ``out_dir``."""
    limit_threads()
    import keras
    import tensorflow as tf
    from edml.trainer.moderation.model import (
        CommentClassifier,
        ModelParams,
        Vectorizers,
        export_saved_model,
        load_serving,
        predict_texts,
    )

    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    labels = np.asarray(removed, dtype=bool)
    train_idx, test_idx = split_indices(len(comments), config.seed)
    texts = [c.text for c in comments]
    x_train, x_test = [texts[i] for i in train_idx], [texts[i] for i in test_idx]
    y_train, y_test = labels[train_idx], labels[test_idx]
    if y_test.all() or not y_test.any() or y_train.all() or not y_train.any():
        raise ValueError("training and held-out comments must each hold removed and kept comments")

    params = ModelParams()
    vectorizers = Vectorizers.adapt(x_train, params)
    classifier = CommentClassifier.build(vectorizers, params)
    classifier.head.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy")

    # The text is vectorised once (by the model's own layers) and cached; the epochs then train
    # the head on sparse features, so training costs about one pass of text processing.
    def featurise(text: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return vectorizers.features(text), y

    def dataset(x: list[str], y: np.ndarray) -> tf.data.Dataset:
        data = tf.data.Dataset.from_tensor_slices((tf.constant(x, dtype=tf.string), y.astype(np.float32)[:, None]))
        return data.batch(config.batch_size).map(featurise).cache()

    train_ds = dataset(x_train, y_train).shuffle(1024, seed=config.seed, reshuffle_each_iteration=True)
    fit = classifier.head.fit(
        train_ds,
        validation_data=dataset(x_test, y_test),
        epochs=config.epochs,
        verbose=config.verbose,
        shuffle=False,  # the dataset shuffles its batches, seeded
    )
    history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}

    saved_model_dir = export_saved_model(classifier, out_dir / "saved_model")
    # Evaluate the exported model itself: the numbers describe exactly what will serve.
    serving = load_serving(saved_model_dir)
    p_test = predict_texts(serving, x_test)
    p_train = predict_texts(serving, x_train)
    rule = keyword_rule(x_test)
    precision, recall = precision_recall(y_test, p_test, ALERT_THRESHOLD)
    rule_precision, rule_recall = precision_recall(y_test, rule, 0.5)
    positive_rate = float(y_train.mean())
    created = [c.created_at for c in comments]
    metrics = ModerationMetrics(
        roc_auc=roc_auc(y_test, p_test),
        log_loss=log_loss(y_test, p_test),
        mae=float(np.mean(np.abs(y_test.astype(np.float64) - p_test))),
        precision_at_alert=precision,
        recall_at_alert=recall,
        baseline_keyword_auc=roc_auc(y_test, rule),
        baseline_keyword_precision=rule_precision,
        baseline_keyword_recall=rule_recall,
        baseline_positive_rate_auc=roc_auc(y_test, np.full(len(y_test), positive_rate)),
        baseline_positive_rate_log_loss=log_loss(y_test, np.full(len(y_test), positive_rate)),
        positive_rate=positive_rate,
        test_positive_rate=float(y_test.mean()),
        n_train=len(x_train),
        n_test=len(x_test),
        epochs=config.epochs,
        seed=config.seed,
        data_window_start=int(min(created)),
        data_window_end=int(max(created)),
        train_seconds=round(time.monotonic() - started, 2),
        model_bytes=_folder_bytes(saved_model_dir),
        trainer_params={
            "model": "logistic regression on word 1-2-grams and character 3-grams (TextVectorization, multi-hot)",
            "target": "removed",
            "output": "p_removed",
            "word_tokens": str(vectorizers.words.vocabulary_size()),
            "char_tokens": str(vectorizers.chars.vocabulary_size()),
            "max_chars": str(params.max_chars),
            "batch_size": str(config.batch_size),
            "learning_rate": str(config.learning_rate),
            "test_fraction": str(TEST_FRACTION),
            "alert_threshold": str(ALERT_THRESHOLD),
            "data": data_source,
        },
    )

    golden_idx = test_idx[:N_GOLDEN]
    golden_inputs: dict[str, list[str]] = {
        "comment_id": [comments[i].comment_id for i in golden_idx],
        "text": [comments[i].text for i in golden_idx],
    }
    golden_out = predict_texts(serving, golden_inputs["text"])
    (out_dir / "golden.json").write_text(
        json.dumps({"inputs": golden_inputs, "outputs": [float(v) for v in golden_out]}, indent=1, ensure_ascii=False)
        + "\n"
    )
    (out_dir / "metrics.json").write_text(json.dumps(asdict(metrics), indent=2) + "\n")
    reference = reference_distributions(x_train, [comments[i].community for i in train_idx], y_train, p_train)
    (out_dir / "reference.json").write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")
    return ModerationTrainResult(out_dir, saved_model_dir, metrics, history)


def train_data(
    data_dir: Path | str,
    out_dir: Path | str,
    epochs: int = 6,
    seed: int = 0,
    max_rows: int | None = None,
    verbose: int | str = 0,
) -> ModerationTrainResult:
    """Train on the data set in ``data_dir`` (comments.avro, decisions.avro); DataFileError if it is bad."""
    from edml.trainer.datafiles import DataFileError
    from edml.trainer.moderation.datafiles import read_labelled

    data = read_labelled(data_dir, max_rows=max_rows)
    if len(data) < MIN_COMMENTS:
        raise DataFileError(
            f"data set {data_dir} holds {len(data)} decided comments; training needs at least {MIN_COMMENTS}"
        )
    config = ModerationTrainConfig(epochs=epochs, seed=seed, verbose=verbose)
    return train_comments(data.comments, data.removed, out_dir, config, data_source=os.fspath(data_dir))


def train_small(out_dir: Path | str, seed: int = 0, n: int = 6_000, epochs: int = 6) -> ModerationTrainResult:
    """A small, quick classifier (``n`` generated comments, seeded): for tests and demos."""
    generated = generate_comments(n, seed=seed)
    return train_comments(
        [g.comment for g in generated],
        [g.decision.removed for g in generated],
        out_dir,
        ModerationTrainConfig(epochs=epochs, seed=seed),
        data_source=f"generated:n={n},seed={seed}",
    )
