"""Put generated comments on Kafka: comments on the pipeline's input topic, moderators' decisions on its label topic.

* :func:`produce_comments` -- as fast as possible (or at a rate), for tests, benchmarks and back-fills;
  each comment's decision can follow it right away.
* :func:`produce_live` -- comments at a target rate, each decision produced
  ``(decided_at - created_at) / time_scale`` seconds of real time after its comment, so the
  decisions lag the comments as moderators do. ``decided_at`` always holds the true decision time;
  only *when* it is produced is compressed. Decisions still pending at the end are produced then.

Keys are the comment id as UTF-8 bytes; values are the declared schemas (edml/pipelines/moderation/)
in the settings' wire format. ``settings`` are the moderation pipeline's
(:func:`edml.pipelines.bound.pipeline_settings`), so ``topics.trips`` is its input topic.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Sequence

from edml.schemas.wire import topic_serdes
from edml.trainer.moderation.comments import Comment, GeneratedComment, ModerationDecision
from edml.trainer.moderation.datafiles import COMMENT_SCHEMA_PATH, DECISION_SCHEMA_PATH
from edml.trainer.paced import Pair, PairProducer, ProduceStats, produce_paced, produce_pairs

from edml.core.config import Settings

# moderators decide within hours; at 3600x an hour's delay is one second of real time
DEFAULT_TIME_SCALE = 3600.0


class CommentProducer(PairProducer):
    """One Kafka producer for comments and decisions, with their declared schemas' serdes."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        serdes = topic_serdes(settings)
        self.comments = serdes.for_schema(settings.topics.trips, json.loads(COMMENT_SCHEMA_PATH.read_text()))
        self.decisions = serdes.for_schema(settings.topics.labels, json.loads(DECISION_SCHEMA_PATH.read_text()))

    def comment(self, comment: Comment) -> None:
        """One comment on the input topic, without its decision."""
        self.produce(self.settings.topics.trips, comment.comment_id.encode(),
                     self.comments.encode(dataclasses.asdict(comment)))

    def pair(self, comment: Comment, decision: ModerationDecision) -> Pair:
        """The comment and its decision, encoded."""
        return Pair(comment.comment_id.encode(), self.comments.encode(dataclasses.asdict(comment)),
                    self.decisions.encode(dataclasses.asdict(decision)),
                    (decision.decided_at - comment.created_at) / 1000.0)

    def pairs(self, comments: Iterable[GeneratedComment]) -> Iterator[Pair]:
        """Each generated comment with its decision, encoded as it is produced."""
        return (self.pair(g.comment, g.decision) for g in comments)


def produce_comments(
    settings: Settings,
    comments: Sequence[GeneratedComment],
    rate: float | None = None,
    with_decisions: bool = False,
    on_progress: Callable[[ProduceStats], None] | None = None,
) -> ProduceStats:
    """Produce every comment (and, with ``with_decisions``, its decision right after); returns once all are delivered.

    ``rate`` is comments per second; None means as fast as possible.
    """
    out = CommentProducer(settings)
    return produce_pairs(out, out.pairs(comments), rate, with_decisions, on_progress)


def produce_live(
    settings: Settings,
    comments: Iterable[GeneratedComment],
    rate: float,
    time_scale: float = DEFAULT_TIME_SCALE,
    on_progress: Callable[[ProduceStats], None] | None = None,
) -> ProduceStats:
    """Produce comments at ``rate`` a second, each decision ``delay / time_scale`` s of real time after its comment."""
    out = CommentProducer(settings)
    return produce_paced(out, out.pairs(comments), rate, time_scale, on_progress)
