"""Live evaluation of a pipeline edml has never seen, declared only in this test, whose labels are binary.

Card payments are scored for fraud by a champion (v1) and a challenger in shadow (v2); the labels
(fraud or not, decided later) arrive on their own topic. The evaluation joins them by the payment
id, and each version's score windows carry its ROC AUC, log loss, precision and recall.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bytewax.testing import run_main
from edml.dataflows.evaluation import drift_features, pipeline_flow
from edml.evaluation.config import EvaluationConfig
from edml.evaluation.drift import parse_reference
from edml.evaluation.scores import read_score_windows
from edml.model_topic.publisher import publish_record
from edml.schemas.records import ModelRecord, ModelSignature, TensorSpec
from edml.schemas.serde import dead_letter_serde, drift_alert_serde, evaluation_serde
from edml.schemas.wire import topic_serdes
from typer.testing import CliRunner

from edml.cli import app
from edml.core.config import Settings
from edml.kafka.clients import make_producer
from edml.kafka.reading import read_to_end
from edml.kafka.topics import create_topics
from edml.pipelines.bound import BoundPipeline, bind_pipeline, pipeline_settings
from edml.pipelines.declaration import load_pipeline
from edml.pipelines.predictions import prediction_schema

pytestmark = pytest.mark.kafka

PAYMENT = {"type": "record", "name": "Payment", "namespace": "test.cards", "fields": [
    {"name": "payment_id", "type": "string"}, {"name": "paid_at", "type": "long"},
    {"name": "amount", "type": "double"}, {"name": "merchant", "type": "string"}]}
VERDICT = {"type": "record", "name": "Verdict", "namespace": "test.cards", "fields": [
    {"name": "payment_id", "type": "string"}, {"name": "decided_at", "type": "long"},
    {"name": "fraud", "type": "boolean"}]}
DECLARATION = """
description = "card payments -> fraud score"
[input]
topic = "payments"
schema = "payment.avsc"
key = "payment_id"
event_time = "paid_at"
[model]
name = "fraud-score"
[labels]
topic = "verdicts"
schema = "verdict.avsc"
key = "payment_id"
field = "fraud"
time = "decided_at"
task = "binary"
threshold = 0.5
"""
NAME = "fraud-score"
T0 = 1_767_225_600_000  # 2026-01-01
H = 3_600_000
SIGNATURE = ModelSignature([TensorSpec("amount", "float64", [-1])], [TensorSpec("fraud_score", "float32", [-1])])


@pytest.fixture
def cards(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, BoundPipeline]:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "payment.avsc").write_text(json.dumps(PAYMENT))
    (folder / "verdict.avsc").write_text(json.dumps(VERDICT))
    (folder / "cards.toml").write_text(DECLARATION)
    (folder / "nolabels.toml").write_text(DECLARATION.split("[labels]")[0])
    monkeypatch.setenv("EDML_PIPELINES_DIR", str(folder))
    bound = bind_pipeline(load_pipeline("cards"))
    s = pipeline_settings(settings, bound.pipeline)
    create_topics(s)
    return s, bound


def produce(s: Settings, topic: str, schema: dict[str, Any], records: list[dict[str, Any]]) -> None:
    serde = topic_serdes(s).for_schema(topic, schema)
    producer = make_producer(s)
    for r in records:
        producer.produce(topic, key=r["payment_id"].encode(), value=serde.encode(r))
    assert producer.flush(30) == 0


def pairwise_auc(scores: list[float], labels: list[bool]) -> float:
    """The AUC by its definition: the share of (fraud, honest) pairs the score orders right, ties half."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    right = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return right / (len(pos) * len(neg))


def test_binary_labels_give_auc_log_loss_precision_and_recall_per_version(
        cards: tuple[Settings, BoundPipeline]) -> None:
    s, bound = cards
    t = s.topics
    for version, challengers in (("v2", []), ("v1", ["v2"])):
        publish_record(s, ModelRecord(NAME, version, f"file:///m/{version}.tar.gz", "00" * 32, 1, SIGNATURE, 0,
                                      challengers=challengers))
    rng = np.random.default_rng(7)
    n = 300
    fraud = rng.random(n) < 0.3
    # v2 separates fraud better than v1; both are noisy scores in [0, 1]
    v1 = np.clip(0.35 + 0.2 * fraud + rng.normal(0, 0.2, n), 0, 1)
    v2 = np.clip(0.25 + 0.5 * fraud + rng.normal(0, 0.15, n), 0, 1)
    ids = [f"pay-{i:04d}" for i in range(n)]
    schema = prediction_schema(bound.pipeline, bound.key, SIGNATURE)
    assert [f["name"] for f in schema["fields"]][:2] == ["payment_id", "fraud_score"]

    def predictions(scores: np.ndarray, version: str, role: str) -> list[dict[str, Any]]:
        return [{"payment_id": ids[i], "fraud_score": float(scores[i]), "model_name": NAME, "model_version": version,
                 "event_time": T0 + i * 60_000, "scored_at": T0 + i * 60_000 + 5, "latency_ms": 5.0, "role": role}
                for i in range(n)]

    produce(s, t.predictions, schema, predictions(v1, "v1", "champion"))
    produce(s, t.shadow_predictions, schema, predictions(v2, "v2", "challenger"))
    verdicts = [{"payment_id": ids[i], "decided_at": T0 + i * 60_000 + H, "fraud": bool(fraud[i])} for i in range(n)]
    produce(s, t.labels, VERDICT, verdicts)
    junk = make_producer(s)
    junk.produce(t.labels, key=b"junk", value=b"not a verdict")
    assert junk.flush(30) == 0

    # the payments themselves, for drift: far larger amounts than the model saw, and more fraud
    produce(s, t.trips, PAYMENT, [{"payment_id": ids[i], "paid_at": T0 + i * 60_000, "amount": 500.0 + i,
                                   "merchant": "m"} for i in range(n)])
    reference = parse_reference({
        "amount": {"kind": "numeric", "edges": [10.0, 50.0, 100.0], "fractions": [0.25, 0.25, 0.25, 0.25]},
        "fraud": {"kind": "categorical", "fractions": {"0": 0.97, "1": 0.03}},
        "elsewhere": {"kind": "numeric", "edges": [1.0], "fractions": [0.5, 0.5]},  # no field of this pipeline
    }, "fraud-score v1", drift_features(bound).names)
    assert set(reference.features) == {"amount", "fraud"}

    run_main(pipeline_flow(s, EvaluationConfig(window_ms=24 * H), bound, reference, tail=False))

    alerts = {a.feature: a for a in (drift_alert_serde().decode(m.value) for m in read_to_end(s, t.alerts))}
    print("[binary] drift: " + ", ".join(f"{f} PSI={a.psi:.2f} over {a.count}" for f, a in sorted(alerts.items())))
    assert set(alerts) == {"amount", "fraud"} and all(a.count == n for a in alerts.values())
    assert alerts["amount"].actual[">100"] == 1.0 and alerts["fraud"].actual["1"] == pytest.approx(fraud.mean())

    windows = read_score_windows(s, NAME)
    by_version = {w.model_version: w for w in windows}
    assert set(by_version) == {"v1", "v2"} and len(windows) == 2  # one window of a day per version
    evaluations = [evaluation_serde().decode(m.value) for m in read_to_end(s, t.evaluations)]
    assert {e.key for e in evaluations} == set(ids) and {e.outcome for e in evaluations} == {"evaluated"}
    for version, scores in (("v1", v1), ("v2", v2)):
        w = by_version[version]
        labels = fraud.tolist()
        called = scores >= 0.5
        expected_loss = -np.mean([math.log(min(max(p, 1e-15), 1 - 1e-15)) if y else
                                  math.log(1 - min(max(p, 1e-15), 1 - 1e-15)) for p, y in zip(scores, labels,
                                                                                              strict=True)])
        print(f"[binary] {version} ({w.role}): count={w.count} AUC={w.roc_auc:.4f} log loss={w.log_loss:.4f} "
              f"accuracy={w.accuracy:.3f} precision={w.precision} recall={w.recall} MAE={w.mae:.3f}")
        assert w.count == n and w.threshold == 0.5
        assert w.roc_auc == pytest.approx(pairwise_auc(scores.tolist(), labels))
        assert w.log_loss == pytest.approx(expected_loss)
        assert w.precision == pytest.approx((called & fraud).sum() / called.sum())
        assert w.recall == pytest.approx((called & fraud).sum() / fraud.sum())
        assert w.accuracy == pytest.approx((called == fraud).mean())
    assert by_version["v2"].roc_auc > by_version["v1"].roc_auc
    dead = [dead_letter_serde().decode(m.value) for m in read_to_end(s, t.dead_letter)]
    assert [(d.source_topic, d.key) for d in dead] == [(t.labels, b"junk")]

    # `edml scores --pipeline` shows the binary figures; `edml promote --pipeline` compares log loss
    runner = CliRunner()
    env = {"EDML_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EDML_TOPIC_PREFIX": t.prefix,
           "EDML_STATE_DIR": str(s.state_dir.parent.parent)}
    shown = runner.invoke(app, ["scores", "--pipeline", "cards"], env=env)
    print(shown.output)
    assert shown.exit_code == 0, shown.output
    assert "AUC" in shown.output and "log loss" in shown.output and "v2" in shown.output
    promoted = runner.invoke(app, ["promote", NAME, "--challenger", "v2", "--windows", "1", "--pipeline", "cards"],
                             env=env)
    print(promoted.output)
    assert promoted.exit_code == 0, promoted.output
    assert "log loss" in promoted.output


def test_evaluating_a_pipeline_without_labels_is_one_line_exit_2(cards: tuple[Settings, BoundPipeline]) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--pipeline", "nolabels", "--metrics-port", "0"])
    assert result.exit_code == 2
    assert "pipeline nolabels" in result.output and "[labels]" in result.output
    assert result.output.strip().count("\n") == 0, result.output
