"""The comment classifier: AUC against the baselines, its SavedModel contract, golden rows, awkward texts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edml.model_topic.artifact import read_model_folder
from edml.trainer.moderation.metrics import log_loss, roc_auc
from edml.trainer.moderation.model import load_serving, predict_texts

# saved_model_cli as a module: the same tool, wherever the venv keeps its scripts
SAVED_MODEL_CLI = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier trained on 6,000 generated comments (4,800 train, 1,200 held out)."""
    from edml.trainer.moderation.train import train_small

    return train_small(tmp_path_factory.mktemp("moderation"), seed=1, n=6_000).out_dir


@pytest.fixture(scope="module")
def serving(model_dir: Path) -> Any:
    """The exported model's serving function, loaded once for the module."""
    return load_serving(model_dir / "saved_model")


def _metrics(model_dir: Path) -> dict:
    return json.loads((model_dir / "metrics.json").read_text())


def _golden(model_dir: Path) -> dict:
    return json.loads((model_dir / "golden.json").read_text())


def test_auc_reaches_0_90_and_beats_both_baselines(model_dir: Path) -> None:
    m = _metrics(model_dir)
    assert m["n_test"] == 1_200 and 0.15 < m["test_positive_rate"] < 0.35
    assert m["roc_auc"] >= 0.90
    assert m["baseline_positive_rate_auc"] == 0.5
    assert m["roc_auc"] > m["baseline_keyword_auc"] + 0.1
    assert m["log_loss"] < 0.6 * m["baseline_positive_rate_log_loss"]
    # flagging at the alert threshold is mostly right
    assert m["precision_at_alert"] > 0.8 and m["recall_at_alert"] > 0.4


def test_model_folder_reads_as_a_manifest(model_dir: Path) -> None:
    manifest = read_model_folder(model_dir, "comment-moderation", "1")
    inputs = [(s.name, s.dtype, s.shape) for s in manifest.signature.inputs]
    outputs = [(s.name, s.dtype, s.shape) for s in manifest.signature.outputs]
    assert inputs == [("text", "string", [-1])]
    assert outputs == [("p_removed", "float32", [-1])]
    assert manifest.metrics["roc_auc"] >= 0.90 and "baseline_keyword_auc" in manifest.metrics
    assert manifest.data_window_start is not None and manifest.data_window_end is not None
    assert manifest.data_window_start < manifest.data_window_end
    assert manifest.trainer_params["output"] == "p_removed"
    assert set(manifest.golden_inputs) == {"comment_id", "text"} and len(manifest.golden_outputs) == 16
    ref = manifest.reference
    assert ref["text_chars"]["kind"] == "numeric" and ref["community"]["kind"] == "categorical"
    assert abs(sum(ref["p_removed"]["fractions"]) - 1.0) < 1e-9


_FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
model_dir = sys.argv[1]
golden = json.load(open(model_dir + "/golden.json"))
fn = tf.saved_model.load(model_dir + "/saved_model").signatures["serving_default"]
out = fn(text=tf.constant(golden["inputs"]["text"]))["p_removed"].numpy()
print(json.dumps([float(v) for v in out]))
"""


def test_golden_rows_reproduce_in_a_fresh_process(model_dir: Path) -> None:
    """Plain ``tf.saved_model.load``: no edml, no Keras objects needed to serve the model."""
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    golden = _golden(model_dir)
    np.testing.assert_allclose(json.loads(proc.stdout), golden["outputs"], rtol=1e-6)
    assert all(0.0 <= p <= 1.0 for p in golden["outputs"])


def test_saved_model_cli_runs_the_signature(model_dir: Path, tmp_path: Path) -> None:
    texts = _golden(model_dir)["inputs"]["text"][:4]
    proc = subprocess.run(
        [*SAVED_MODEL_CLI, "run", "--dir", str(model_dir / "saved_model"), "--tag_set", "serve",
         "--signature_def", "serving_default", "--input_exprs", f"text={texts!r}", "--outdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "p_removed.npy"), _golden(model_dir)["outputs"][:4], rtol=1e-5)


def test_awkward_texts_get_a_probability(serving: Any) -> None:
    texts = [
        "",
        "   \n\t ",
        "word " * 50_000,  # 250,000 characters
        "你好，这场比赛太精彩了 🔥🔥 مرحبا crème brûlée Zürich",
        "\x00\x01\x7f control characters",
        "!!!???...",
        "YOU ARE A PATHETIC IDIOT",
    ]
    p = predict_texts(serving, texts)
    assert p.shape == (len(texts),) and p.dtype == np.float32
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert p[-1] > 0.8 > p[3]  # shouted abuse is flagged, foreign words are not


def test_an_empty_batch_gives_an_empty_result(serving: Any) -> None:
    import tensorflow as tf

    assert serving(text=tf.constant([], dtype=tf.string))["p_removed"].shape == (0,)


def test_disguised_insults_are_caught_by_the_character_features(serving: Any) -> None:
    texts = ["great match, you are a pathetic 1d10t", "great match, you are a pathetic m*ron",
             "great match, you are a pathetic l o s e r", "great match, the keeper was brilliant"]  # fmt: skip
    p = predict_texts(serving, texts)
    assert (p[:3] > p[3] + 0.2).all(), p


def test_roc_auc_counts_ties_as_half() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert roc_auc(np.array([0, 1]), np.array([0.9, 0.1])) == 0.0
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.array([1, 1]), np.array([0.2, 0.3]))
    assert log_loss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(np.log(2))
