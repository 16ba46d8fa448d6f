"""The demo's moderation act: live comments scored by a text classifier, alerts, a model swap, AUC per version.

Everything is the declared ``moderation`` pipeline (edml/pipelines/moderation.toml) run by
``edml serve --pipeline moderation``; this module only trains, publishes, produces and shows.
Every run gets its own topics (prefix ``demo-<run>-``) and state folder.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from edml.cli.demo import _step, _wait_for, _wait_healthy, console
from edml.core.config import Settings
from edml.kafka.local_broker import free_port
from edml.kafka.reading import read_to_end
from edml.kafka.topics import create_topics
from edml.pipelines.alerts import alert_schema
from edml.pipelines.bound import BoundPipeline, open_pipeline, pipeline_settings
from edml.pipelines.predictions import prediction_schema
from edml.schemas.wire import topic_serdes

MODEL = "comment-moderation"


def _train(out: Path, n: int, seed: int) -> Path:
    from edml.trainer.moderation.train import train_small

    result = train_small(out, seed=seed, n=n, epochs=4)
    m = result.metrics
    console.print(f"trained on {m.n_train:,} comments: held-out ROC AUC {m.roc_auc:.3f} (keyword rule "
                  f"{m.baseline_keyword_auc:.3f}, positive rate {m.positive_rate:.1%}) in {m.train_seconds:.0f} s")
    return result.out_dir


def _publish(s: Settings, bound: BoundPipeline, model_dir: Path, version: str) -> bool:
    from edml.model_topic.gate import GateRefused
    from edml.model_topic.publisher import publish_model

    try:
        record = publish_model(s, model_dir, MODEL, version=version, pipeline=bound)
    except GateRefused as e:  # the gate's word is part of the story: the last good model keeps serving
        console.print(f"[yellow]gate refused {version}: {e}")
        return False
    console.print(f"published [bold]{record.version}[/] -> {record.artifact_uri}")
    return True


def _records(s: Settings, topic: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    serde = topic_serdes(s).for_schema(topic, schema)
    return [serde.decode(m.value) for m in read_to_end(s, topic)]


def _live_table(preds: list[dict[str, Any]], texts: dict[str, str], threshold: float, rows: int = 10) -> Table:
    table = Table(title="latest comments and their probability of removal")
    for name in ("comment", "p_removed", "alert", "version"):
        table.add_column(name, overflow="ellipsis", no_wrap=name == "comment", max_width=44 if name == "comment"
                         else None)
    for p in preds[-rows:]:
        alert = "[red]ALERT" if p["p_removed"] >= threshold else ""
        table.add_row(texts.get(p["comment_id"], "?"), f"{p['p_removed']:.2f}", alert, p["model_version"])
    return table


def _auc_table(preds: list[dict[str, Any]], removed: dict[str, bool]) -> Table:
    from edml.trainer.moderation.metrics import roc_auc

    table = Table(title="ROC AUC per model version (predictions joined with moderators' decisions)")
    for name in ("version", "scored", "decided", "ROC AUC"):
        table.add_column(name)
    for version in sorted({p["model_version"] for p in preds}):
        joined = [(removed[p["comment_id"]], p["p_removed"]) for p in preds
                  if p["model_version"] == version and p["comment_id"] in removed]
        labels = np.array([y for y, _ in joined], dtype=bool)
        auc = f"{roc_auc(labels, np.array([q for _, q in joined])):.3f}" if 0 < labels.sum() < len(labels) else "-"
        table.add_row(version, str(sum(p["model_version"] == version for p in preds)), str(len(joined)), auc)
    return table


def run_moderation_act(base: Settings, comments_per_phase: int = 1500, rate: float = 200.0) -> None:
    """The moderation story on the broker of ``base``: train, publish, serve, stream, alert, swap, AUC per version."""
    from edml.model_topic.artifact import read_model_folder
    from edml.trainer.moderation.comments import generate_comments
    from edml.trainer.moderation.producing import produce_live

    run = time.strftime("%Y%m%d-%H%M%S")
    root = base.state_dir / "demo-moderation" / run
    prefix = f"demo-{run}-"
    prefixed = dataclasses.replace(base, topics=base.topics.with_prefix(prefix), state_dir=root / "state",
                                   artifact_store=f"file://{(root / 'artifacts').resolve()}")
    bound = open_pipeline("moderation", prefixed)
    s = pipeline_settings(prefixed, bound.pipeline)
    rule = bound.pipeline.alerts[0]  # likely-removed: p_removed >= its threshold
    threshold = float(rule.when[0].value)
    _step(f"M1. The moderation pipeline: comments -> p_removed; rule {rule.name} (p_removed >= {threshold}) "
          f"alerts on {s.topics.prediction_alerts}")
    create_topics(s)

    _step("M2. Train v1: a Keras text classifier whose SavedModel takes the raw text")
    v1_dir = _train(root / "model-v1", 3_000, 0)
    _publish(s, bound, v1_dir, "v1")
    schema = prediction_schema(bound.pipeline, bound.key, read_model_folder(v1_dir, MODEL, "v1").signature)

    _step("M3. edml serve --pipeline moderation")
    metrics_port = free_port()
    env = {**os.environ, "EDML_BOOTSTRAP_SERVERS": base.bootstrap_servers, "EDML_TOPIC_PREFIX": prefix,
           "EDML_STATE_DIR": str(prefixed.state_dir), "EDML_ARTIFACT_STORE": prefixed.artifact_store_uri,
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(root / "serve.log", "wb") as log:
        serve = subprocess.Popen([sys.executable, "-m", "edml.cli", "serve", "--pipeline", "moderation",
                                  "--metrics-port", str(metrics_port)], env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
    try:
        _wait_healthy(metrics_port, serve)
        phase1 = generate_comments(comments_per_phase, seed=21)
        phase2 = generate_comments(comments_per_phase, seed=22, start_ms=phase1[-1].comment.created_at + 1)
        texts = {g.comment.comment_id: g.comment.text for g in phase1 + phase2}

        _step(f"M4. Stream {comments_per_phase:,} comments at {rate:.0f}/s; moderators' decisions follow")
        produce_live(s, phase1, rate)
        _wait_for(lambda: len(read_to_end(s, s.topics.predictions)) >= len(phase1), 60)
        preds = _records(s, s.topics.predictions, schema)
        console.print(_live_table(preds, texts, threshold))

        _step("M5. Train v2 on other comments while v1 serves, publish it: the scorer swaps under traffic")
        v2_dir = _train(root / "model-v2", 6_000, 1)
        _publish(s, bound, v2_dir, "v2")
        produce_live(s, phase2, rate)
        _wait_for(lambda: len(read_to_end(s, s.topics.predictions)) >= len(texts), 60)
        preds = _records(s, s.topics.predictions, schema)
        alerts = _records(s, s.topics.prediction_alerts, alert_schema(schema))
        console.print(_live_table(preds, texts, threshold))
        above = sum(p["p_removed"] >= threshold for p in preds)
        console.print(f"{len(texts):,} comments sent, {len({p['comment_id'] for p in preds}):,} scored; "
                      f"{len(alerts):,} alerts on {s.topics.prediction_alerts} for {above:,} at >= {threshold}")

        _step("M6. Live ROC AUC per model version")
        decisions = _records(s, s.topics.labels, bound.label_schema or {})
        console.print(_auc_table(preds, {d["comment_id"]: d["removed"] for d in decisions}))
    finally:
        serve.terminate()
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
