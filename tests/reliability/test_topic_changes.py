"""The trips topic changes under a kept state folder: a declared policy, counted and logged, never a silent skip.

- re-created (same name, fewer partitions) while the scorer is stopped: the default policy reads
  the new topic from its earliest offset, counts the change, and a partition the topic no
  longer has is no traceback; ``EDML_ON_TOPIC_CHANGE=exit`` stops with exit 2 and one line.
- partitions added while serving: picked up within the check interval and counted.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import NewPartitions, NewTopic
from edml.trainer.generator import generate_trips
from edml.trainer.producing import produce_trips

from edml.core.config import Settings
from edml.kafka.clients import make_admin
from tests.integration.scorer_process import ScorerProcess, predictions, wait_until
from tests.reliability.harness import TinyModels, publish, running, wait_for

pytestmark = pytest.mark.kafka


def recreate_trips_topic(settings: Settings, partitions: int) -> None:
    """Delete the trips topic and create it again under the same name (a new topic id)."""
    admin = make_admin(settings)
    topic = settings.topics.trips
    admin.delete_topics([topic])[topic].result(30)

    def created() -> bool:  # deletion finishes in the background: retry until the name is free
        try:
            admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
            return True
        except Exception:  # noqa: BLE001 - TOPIC_ALREADY_EXISTS while marked for deletion
            return False

    wait_until(created, 60, message=f"{topic} could not be created again")


def topic_changes(metrics_text: str, change: str) -> float:
    """edml_source_topic_changes_total of one kind of change, summed over partitions."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith("edml_source_topic_changes_total{") and f'change="{change}"' in line)


def _scored_once(settings: Settings, trips_n: int, seed: int) -> list[str]:
    """Score ``trips_n`` trips with a scorer that then stops (snapshotting its offsets)."""
    trips = generate_trips(trips_n, seed=seed)
    produce_trips(settings, trips)
    with running(ScorerProcess(settings)) as scorer:
        wait_for(lambda: len(predictions(settings)) >= trips_n, 120, scorer, "first predictions")
        time.sleep(2.5)  # two epochs of 1 s: the offsets are snapshotted
    return [t.pickup.trip_id for t in trips]


def test_recreated_topic_with_fewer_partitions_is_read_from_its_start(settings: Settings,
                                                                       tiny_models: TinyModels) -> None:
    publish(settings, tiny_models.v1, "v1")
    before = _scored_once(settings, 2000, seed=41)
    recreate_trips_topic(settings, partitions=1)
    after = generate_trips(800, seed=42)
    produce_trips(settings, after)
    ids = {t.pickup.trip_id for t in after}
    with running(ScorerProcess(settings)) as scorer:
        wait_for(lambda: ids <= {p.trip_id for p in predictions(settings)}, 120, scorer,
                 "predictions of every trip of the new topic")
        text = scorer.metrics()
        changes = {c: topic_changes(text, c) for c in ("topic-recreated", "partition-gone")}
        log = scorer.log(None)
    scored = ids & {p.trip_id for p in predictions(settings)}
    print(f"\n[topic re-created] trips before={len(before)} (2 partitions) after={len(after)} (1 partition) "
          f"scored_after={len(scored)} skipped={len(ids) - len(scored)} changes={changes}")
    assert changes == {"topic-recreated": 1.0, "partition-gone": 1.0}
    assert "Traceback" not in log and "panicked" not in log
    assert "was re-created" in log


def test_recreated_topic_with_exit_policy_stops_with_one_line(settings: Settings, tiny_models: TinyModels) -> None:
    publish(settings, tiny_models.v1, "v1")
    _scored_once(settings, 300, seed=43)
    recreate_trips_topic(settings, partitions=2)
    produce_trips(settings, generate_trips(100, seed=44))
    scorer = ScorerProcess(settings, env={"EDML_ON_TOPIC_CHANGE": "exit"}).start()
    try:
        code = scorer.proc.wait(120)
    finally:
        scorer.kill()
    log = scorer.log(None)
    errors = [line for line in log.splitlines() if line.startswith("edml: error:")]
    print(f"\n[topic re-created, exit policy] exit={code} error lines={len(errors)}: {errors[:1]}")
    assert code == 2, log[-3000:]
    assert errors and settings.topics.trips in errors[0] and "EDML_ON_TOPIC_CHANGE=earliest" in errors[0]
    assert "Traceback" not in log and "panicked" not in log


def test_partitions_added_while_serving_are_read(settings: Settings, tiny_models: TinyModels) -> None:
    publish(settings, tiny_models.v1, "v1")
    first = generate_trips(300, seed=45)
    produce_trips(settings, first)
    scorer = ScorerProcess(settings, env={"EDML_PARTITION_CHECK_S": "2"})
    with running(scorer):
        wait_for(lambda: len(predictions(settings)) >= len(first), 120, scorer, "first predictions")
        topic = settings.topics.trips
        started = time.monotonic()
        admin = make_admin(settings)  # kept: the result needs the client alive
        admin.create_partitions([NewPartitions(topic, 4)])[topic].result(30)
        added = generate_trips(2000, seed=46)
        produce_trips(settings, added)
        ids = {t.pickup.trip_id for t in added} | {t.pickup.trip_id for t in first}
        wait_for(lambda: ids <= {p.trip_id for p in predictions(settings)}, 90, scorer,
                 "predictions of the trips on the added partitions")
        took = time.monotonic() - started
        counted = topic_changes(scorer.metrics(), "partition-added")
        alive = scorer.proc.poll() is None
    print(f"\n[partitions added] 2 -> 4 partitions, trips after={len(added)} all scored {took:.1f}s after the "
          f"partitions were added, without a restart of the process; counted={counted:.0f}")
    assert alive
    assert counted == 2.0


def test_offsets_before_the_start_are_counted_and_read_from_the_earliest(settings: Settings,
                                                                        tiny_models: TinyModels) -> None:
    from confluent_kafka import TopicPartition

    publish(settings, tiny_models.v1, "v1")
    _scored_once(settings, 300, seed=47)
    read = {p: admin_high(settings, p) for p in range(settings.partitions)}  # where the snapshots are
    unread = generate_trips(400, seed=48)
    produce_trips(settings, unread)
    ends = {p: admin_high(settings, p) for p in read}
    # retention (here: delete_records) removes 20 events per partition the stopped scorer never read
    cut = {p: read[p] + 20 for p in read}
    admin = make_admin(settings)
    topic = settings.topics.trips
    for future in admin.delete_records([TopicPartition(topic, p, cut[p]) for p in cut]).values():
        future.result(30)
    held = sum(ends[p] - cut[p] for p in ends)
    with running(ScorerProcess(settings)) as scorer:
        wait_for(lambda: metric_total(scorer, "offset-before-start") == settings.partitions, 120, scorer,
                 "offset-before-start counted")
        wait_for(lambda: len(predictions(settings)) >= 300 + held, 120, scorer, "predictions of the events still held")
        log = scorer.log(None)
    scored = {p.trip_id for p in predictions(settings)} & {t.pickup.trip_id for t in unread}
    print(f"\n[offsets before the start] unread={len(unread)} deleted unread by retention={len(unread) - held} "
          f"scored of the unread={len(scored)} counted={settings.partitions}")
    assert len(scored) == held
    assert "deleted unread" in log and "Traceback" not in log


def admin_high(settings: Settings, partition: int) -> int:
    """The partition's high watermark."""
    from confluent_kafka import TopicPartition

    from edml.kafka.clients import make_consumer

    consumer = make_consumer(settings)
    try:
        return consumer.get_watermark_offsets(TopicPartition(settings.topics.trips, partition), timeout=30)[1]
    finally:
        consumer.close()


def metric_total(scorer: ScorerProcess, change: str) -> float:
    """topic_changes of the scorer, 0 before its metrics server answers."""
    try:
        return topic_changes(scorer.metrics(), change)
    except OSError:
        return 0.0
