"""The built-in moderation pipeline scored by `edml serve --pipeline moderation` on a real broker.

Generated comments are scored by a Keras text classifier trained here (the text vectorised inside
the SavedModel): every comment gets its p_removed, every comment at or above 0.8 exactly one alert
on `moderation-alerts` and none below; malformed comments (invalid UTF-8, over the declared length,
null text) are dead letters with reasons; a model swap under traffic leaves no comment unscored.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from edml.model_topic.artifact import read_model_folder
from edml.model_topic.publisher import publish_model
from edml.schemas.records import DeadLetter
from edml.schemas.serde import dead_letter_serde
from edml.schemas.wire import RecordSerde, topic_serdes
from edml.trainer.moderation.comments import GeneratedComment, generate_comments
from edml.trainer.moderation.model import predict_texts
from edml.trainer.moderation.producing import CommentProducer, produce_comments
from edml.trainer.moderation.train import train_small

from edml.core.config import Settings
from edml.kafka.reading import read_to_end
from edml.kafka.topics import create_topics
from edml.pipelines.alerts import alert_schema
from edml.pipelines.bound import BoundPipeline, open_pipeline, pipeline_settings
from edml.pipelines.predictions import prediction_schema
from tests.integration.scorer_process import ScorerProcess, wait_until

pytestmark = pytest.mark.kafka

MODEL = "comment-moderation"
ALERT_AT = 0.8  # the declared rule: p_removed >= 0.8


@pytest.fixture(scope="session")
def moderation_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small moderation classifier (2000 generated comments, 3 epochs: seconds to train)."""
    return train_small(tmp_path_factory.mktemp("moderation-v1"), seed=0, n=2_000, epochs=3).out_dir


@pytest.fixture(scope="session")
def moderation_model_dir_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another classifier (other comments and weights), so its predictions differ from v1's."""
    return train_small(tmp_path_factory.mktemp("moderation-v2"), seed=1, n=2_000, epochs=3).out_dir


@pytest.fixture
def moderation(settings: Settings) -> tuple[Settings, BoundPipeline]:
    """The built-in moderation pipeline under the test's topic prefix, its topics created."""
    bound = open_pipeline("moderation", settings)
    s = pipeline_settings(settings, bound.pipeline)
    create_topics(s)
    return s, bound


def prediction_serde(s: Settings, bound: BoundPipeline, model_dir: Path) -> RecordSerde[dict[str, Any]]:
    signature = read_model_folder(model_dir, MODEL, "v1").signature
    return topic_serdes(s).for_schema(s.topics.predictions, prediction_schema(bound.pipeline, bound.key, signature))


def dead(s: Settings) -> dict[str, DeadLetter]:
    letters = [dead_letter_serde().decode(m.value) for m in read_to_end(s, s.topics.dead_letter)]
    return {d.key.decode(): d for d in letters}


def malformed(s: Settings, bound: BoundPipeline, template: GeneratedComment) -> list[str]:
    """Produce three malformed comments; returns their ids: invalid UTF-8, 2001 characters, null text."""
    out = CommentProducer(s)
    c = template.comment
    # invalid UTF-8: a valid record whose text bytes are replaced in place (same length, same Avro framing)
    placeholder = "PLACEHOLDER-TEXT"
    bad_utf8 = dataclasses.replace(c, comment_id="bad-utf8", text=placeholder)
    value = out.comments.encode(dataclasses.asdict(bad_utf8))
    assert value.count(placeholder.encode()) == 1
    out.produce(s.topics.trips, b"bad-utf8", value.replace(placeholder.encode(), b"\xff\xfe\xc3(" * 4))
    out.comment(dataclasses.replace(c, comment_id="too-long", text="a" * 2001))
    # null text: the schema lets a client send none; the declaration requires it
    out.produce(s.topics.trips, b"null-text", out.comments.encode({**dataclasses.asdict(c), "comment_id": "null-text",
                                                                    "text": None}))
    out.flush()
    return ["bad-utf8", "too-long", "null-text"]


def test_comments_are_scored_alerted_and_malformed_ones_dead_lettered(
        moderation: tuple[Settings, BoundPipeline], settings: Settings, moderation_model_dir: Path) -> None:
    s, bound = moderation
    publish_model(s, moderation_model_dir, MODEL, version="v1", pipeline=bound)
    generated = generate_comments(400, seed=7)
    produce_comments(s, generated, with_decisions=True)
    bad = malformed(s, bound, generated[0])
    scorer = ScorerProcess(settings, args=["--pipeline", "moderation"]).start()
    try:
        wait_until(lambda: len(read_to_end(s, s.topics.predictions)) >= len(generated) and len(dead(s)) >= len(bad),
                   120, message="scorer did not score every comment")
    finally:
        scorer.stop()

    pred_serde = prediction_serde(s, bound, moderation_model_dir)
    preds = [pred_serde.decode(m.value) for m in read_to_end(s, s.topics.predictions)]
    alert_serde = topic_serdes(s).for_schema(s.topics.prediction_alerts, alert_schema(pred_serde.schema_json))
    alerts = [(m.key, alert_serde.decode(m.value)) for m in read_to_end(s, s.topics.prediction_alerts)]
    letters = dead(s)
    print(f"[moderation] comments={len(generated)} predictions={len(preds)} alerts={len(alerts)} "
          f"dead_letters={len(letters)}: " + "; ".join(f"{k} {d.error_kind} {d.message}"
                                                        for k, d in sorted(letters.items())))

    # every comment scored once, by v1, with the model's own probability
    by_key = {p["comment_id"]: p for p in preds}
    assert len(preds) == len(generated) and set(by_key) == {g.comment.comment_id for g in generated}
    expected = predict_texts(moderation_model_dir / "saved_model", [g.comment.text for g in generated])
    for g, want in zip(generated, expected, strict=True):
        p = by_key[g.comment.comment_id]
        assert p["model_version"] == "v1" and p["role"] == "champion" and p["event_time"] == g.comment.created_at
        assert p["p_removed"] == pytest.approx(float(want), rel=1e-5, abs=1e-6)
    # every comment at or above the threshold has exactly one alert (a copy of its prediction); none below
    fired = sorted(k for k, p in by_key.items() if p["p_removed"] >= ALERT_AT)
    assert 0 < len(fired) < len(preds)
    assert sorted(a["comment_id"] for _, a in alerts) == fired
    assert all(key == a["comment_id"].encode() and a == {**by_key[a["comment_id"]], "rule": "likely-removed"}
               for key, a in alerts)
    # malformed comments are dead letters naming what is wrong; none of them is scored
    assert set(letters) == set(bad) and not set(bad) & set(by_key)
    assert "utf-8" in letters["bad-utf8"].message.lower()
    assert letters["too-long"].message.startswith("text") and "2001" in letters["too-long"].message
    assert letters["null-text"].message == "text is required but null"


def test_a_swap_under_traffic_leaves_no_comment_unscored(
        moderation: tuple[Settings, BoundPipeline], settings: Settings, moderation_model_dir: Path,
        moderation_model_dir_v2: Path) -> None:
    s, bound = moderation
    publish_model(s, moderation_model_dir, MODEL, version="v1", pipeline=bound)
    pool = generate_comments(20_000, seed=11)
    pred_serde = prediction_serde(s, bound, moderation_model_dir)
    produced: list[GeneratedComment] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def traffic() -> None:  # comments at ~300/s until told to stop: the swap happens while they flow
        try:
            out = CommentProducer(s)
            for g in pool:
                if stop.is_set():
                    break
                out.comment(g.comment)
                produced.append(g)
                out.poll()
                time.sleep(1 / 300)
            out.flush()
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            errors.append(e)

    def versions_scored() -> set[str]:
        return {pred_serde.decode(m.value)["model_version"] for m in read_to_end(s, s.topics.predictions)}

    scorer = ScorerProcess(settings, args=["--pipeline", "moderation"]).start()
    producer = threading.Thread(target=traffic, daemon=True)
    try:
        scorer.wait_healthy()
        producer.start()
        # v2 arrives while comments are flowing, once v1 has scored some; they flow until v2 scores too
        wait_until(lambda: len(read_to_end(s, s.topics.predictions)) >= 200, 60, message=scorer.log())
        publish_model(s, moderation_model_dir_v2, MODEL, version="v2", pipeline=bound, force=True)
        wait_until(lambda: "v2" in versions_scored(), 90, message=scorer.log())
        stop.set()
        producer.join(30)
        assert not producer.is_alive() and not errors, errors
        wait_until(lambda: len(read_to_end(s, s.topics.predictions)) >= len(produced), 120, message=scorer.log())
    finally:
        stop.set()
        scorer.stop()

    generated = produced
    preds = [pred_serde.decode(m.value) for m in read_to_end(s, s.topics.predictions)]
    versions = [p["model_version"] for p in preds]
    print(f"[moderation swap] comments={len(generated)} predictions={len(preds)} "
          f"v1={versions.count('v1')} v2={versions.count('v2')} dead_letters={len(dead(s))}")
    # each comment scored exactly once, by the champion of its moment: both versions served, none lost
    assert sorted(p["comment_id"] for p in preds) == sorted(g.comment.comment_id for g in generated)
    assert versions.count("v1") > 0 and versions.count("v2") > 0
    assert not dead(s)
