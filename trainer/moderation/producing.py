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
import heapq
import json
import time
from collections.abc import Callable, Iterable, Sequence

from confluent_kafka import KafkaException, Producer
from edml.schemas.wire import topic_serdes
from edml.trainer.moderation.comments import Comment, GeneratedComment, ModerationDecision
from edml.trainer.moderation.datafiles import COMMENT_SCHEMA_PATH, DECISION_SCHEMA_PATH
from edml.trainer.producing import ProduceError, ProduceStats

from edml.core.config import Settings
from edml.kafka.clients import make_producer

# moderators decide within hours; at 3600x an hour's delay is one second of real time
DEFAULT_TIME_SCALE = 3600.0


class CommentProducer:
    """One Kafka producer for comments and decisions, remembering the first delivery failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: Producer = make_producer(settings)
        serdes = topic_serdes(settings)
        self.comments = serdes.for_schema(settings.topics.trips, json.loads(COMMENT_SCHEMA_PATH.read_text()))
        self.decisions = serdes.for_schema(settings.topics.labels, json.loads(DECISION_SCHEMA_PATH.read_text()))
        self.error: str | None = None

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None and self.error is None:
            self.error = str(err)

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce raw bytes (also for tests that need a malformed value), waiting when the local queue is full."""
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:  # the local queue is full: let deliveries drain, then retry
                self.producer.poll(0.05)
            except KafkaException as e:
                raise ProduceError(f"cannot produce to {topic}: {e}") from None

    def comment(self, comment: Comment) -> None:
        self.produce(self.settings.topics.trips, comment.comment_id.encode(),
                     self.comments.encode(dataclasses.asdict(comment)))

    def decision(self, decision: ModerationDecision) -> None:
        self.produce(self.settings.topics.labels, decision.comment_id.encode(),
                     self.decisions.encode(dataclasses.asdict(decision)))

    def poll(self) -> None:
        self.producer.poll(0)
        self._check()

    def _check(self) -> None:
        if self.error is not None:
            raise ProduceError(f"Kafka delivery failed ({self.settings.bootstrap_servers}): {self.error}")

    def flush(self, timeout: float = 60.0) -> None:
        left = self.producer.flush(timeout)
        self._check()
        if left:
            raise ProduceError(f"{left} messages not delivered within {timeout:.0f}s; is Kafka reachable at "
                               f"{self.settings.bootstrap_servers}?")


def _sleep_until(deadline: float, out: CommentProducer) -> None:
    while (now := time.monotonic()) < deadline:
        out.poll()
        time.sleep(min(deadline - now, 0.01))


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
    stats = ProduceStats()
    started = time.monotonic()
    for i, g in enumerate(comments):
        if rate:
            _sleep_until(started + i / rate, out)
        out.comment(g.comment)
        stats.events += 1
        if with_decisions:
            out.decision(g.decision)
            stats.labels += 1
        if i % 1000 == 999:
            out.poll()
            if on_progress:
                on_progress(stats)
    out.flush()
    if on_progress:
        on_progress(stats)
    return stats


def produce_live(
    settings: Settings,
    comments: Iterable[GeneratedComment],
    rate: float,
    time_scale: float = DEFAULT_TIME_SCALE,
    on_progress: Callable[[ProduceStats], None] | None = None,
) -> ProduceStats:
    """Produce comments at ``rate`` a second, each decision ``delay / time_scale`` s of real time after its comment."""
    if rate <= 0 or time_scale <= 0:
        raise ValueError("rate and time_scale must be positive")
    out = CommentProducer(settings)
    stats = ProduceStats()
    pending: list[tuple[float, int, ModerationDecision]] = []  # (due, sequence, decision): a min-heap on due time
    started = time.monotonic()

    def emit_due(now: float) -> None:
        while pending and pending[0][0] <= now:
            out.decision(heapq.heappop(pending)[2])
            stats.labels += 1

    last_report = 0.0
    for i, g in enumerate(comments):
        due = started + i / rate
        while (now := time.monotonic()) < due:
            emit_due(now)
            out.poll()
            time.sleep(min(due - now, 0.01))
        out.comment(g.comment)
        stats.events += 1
        delay_s = (g.decision.decided_at - g.comment.created_at) / 1000.0
        heapq.heappush(pending, (time.monotonic() + delay_s / time_scale, i, g.decision))
        emit_due(time.monotonic())
        if on_progress and time.monotonic() - last_report > 0.1:
            out.poll()
            on_progress(stats)
            last_report = time.monotonic()
    emit_due(float("inf"))  # the stream stops: every moderator decides now
    out.flush()
    if on_progress:
        on_progress(stats)
    return stats
