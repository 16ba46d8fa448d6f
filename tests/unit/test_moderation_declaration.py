"""The built-in moderation pipeline's declaration: what it reads, feeds, checks, alerts on and learns from."""

from __future__ import annotations

from edml.trainer.moderation.comments import COMMUNITIES
from edml.trainer.moderation.datafiles import COMMENT_SCHEMA_PATH, DECISION_SCHEMA_PATH

from edml.core.config import Settings
from edml.pipelines.bound import bind_pipeline, pipeline_settings
from edml.pipelines.declaration import load_pipeline


def test_the_moderation_pipeline_reads_comments_and_alerts_on_likely_removals() -> None:
    pipeline = load_pipeline("moderation")
    bound = bind_pipeline(pipeline)
    assert (pipeline.input.topic, pipeline.input.key, pipeline.input.event_time) == ("comments", "comment_id",
                                                                                      "created_at")
    assert bound.schema["name"] == "Comment" and set(bound.fields) == {"comment_id", "created_at", "community",
                                                                        "author_id", "text"}
    assert [(r.name, [(c.field, c.op, c.value) for c in r.when]) for r in pipeline.alerts] == [
        ("likely-removed", [("p_removed", ">=", 0.8)])]
    labels = pipeline.labels
    assert labels is not None
    assert (labels.topic, labels.key, labels.field, labels.time, labels.task, labels.threshold, labels.prediction) \
        == ("moderation-decisions", "comment_id", "removed", "decided_at", "binary", 0.8, "p_removed")
    assert bound.label_schema is not None and bound.label_schema["name"] == "ModerationDecision"


def test_its_constraints_cover_the_text_and_every_generated_community() -> None:
    constraints = {c.field: c for c in load_pipeline("moderation").constraints}
    assert constraints["text"].required and constraints["text"].max_length == 2000
    assert set(constraints["community"].allowed or ()) == set(COMMUNITIES)


def test_its_topics_are_its_own_and_the_alert_topic_is_moderation_alerts() -> None:
    topics = pipeline_settings(Settings(), load_pipeline("moderation")).topics
    assert (topics.trips, topics.labels, topics.prediction_alerts) == ("comments", "moderation-decisions",
                                                                        "moderation-alerts")
    named = [getattr(topics, role) for role in ("predictions", "shadow_predictions", "dead_letter", "evaluations",
                                                 "scores", "alerts", "prediction_alerts")]
    assert len(set(named)) == len(named)  # no two roles share a topic


def test_the_trainer_writes_the_schemas_the_declaration_reads() -> None:
    pipeline = load_pipeline("moderation")
    assert pipeline.input.schema.path == COMMENT_SCHEMA_PATH.resolve()
    assert pipeline.labels is not None and pipeline.labels.schema.path == DECISION_SCHEMA_PATH.resolve()
