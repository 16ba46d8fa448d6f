"""Consumer lag is visible: in /metrics (edml_source_lag) and to Kafka's own consumer-groups tool.

The scorer commits its snapshotted offsets to the group named after the dataflow, for
monitoring only (recovery stays the truth of where to resume).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from edml.trainer.generator import generate_trips
from edml.trainer.producing import produce_trips

from edml.core.config import Settings
from tests.integration.scorer_process import ScorerProcess, predictions
from tests.reliability.harness import TinyModels, metric, publish, running, wait_for

pytestmark = pytest.mark.kafka
GROUP = "edml-scoring"


def group_lag(settings: Settings, group: str = GROUP, topic: str | None = None) -> dict[int, tuple[int, int]]:
    """Partition -> (committed offset, lag) of ``topic`` (trips), as kafka-consumer-groups --describe shows it."""
    topic = topic or settings.topics.trips
    from edml.kafka.local_broker import LIB_DIR

    out = subprocess.run(
        ["java", "-cp", f"{LIB_DIR}/*", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
         "--bootstrap-server", settings.bootstrap_servers, "--describe", "--group", group],
        capture_output=True, text=True, timeout=90,
    )
    rows = {}
    for line in out.stdout.splitlines():
        cells = line.split()
        # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
        if len(cells) >= 6 and cells[1] == topic and cells[3].isdigit():
            rows[int(cells[2])] = (int(cells[3]), int(cells[5]))
    return rows


def source_lag(scorer: ScorerProcess) -> float | None:
    """The sum of edml_source_lag over partitions; None before the metrics server answers."""
    try:
        return metric(scorer.metrics(), "edml_source_lag")
    except OSError:
        return None


def test_lag_in_metrics_and_in_the_consumer_groups_tool(settings: Settings, tiny_models: TinyModels) -> None:
    trips = generate_trips(600, seed=20)
    produce_trips(settings, trips)
    with running(ScorerProcess(settings)) as scorer:
        # no model yet: every trip is held at the source, and shows as lag
        wait_for(lambda: source_lag(scorer) == len(trips), 90, scorer, "lag of the held trips in /metrics")
        held_lag = source_lag(scorer)
        publish(settings, tiny_models.v1, "v1")
        wait_for(lambda: len(predictions(settings)) >= len(trips), 120, scorer, "predictions")
        wait_for(lambda: source_lag(scorer) == 0, 30, scorer, "lag 0 in /metrics")
        rows: dict[int, tuple[int, int]] = {}

        def caught_up() -> bool:
            rows.update(group_lag(settings))
            return len(rows) == settings.partitions and sum(c for c, _ in rows.values()) == len(trips)

        wait_for(caught_up, 120, scorer, f"committed offsets of group {GROUP}")
    committed, lag = sum(c for c, _ in rows.values()), sum(lag for _, lag in rows.values())
    print(f"\n[lag] trips={len(trips)} lag while held (metrics)={held_lag:.0f} after scoring: metrics=0 "
          f"consumer-groups tool: committed={committed} lag={lag}")
    assert held_lag == len(trips)
    assert all(lag == 0 for _, lag in rows.values()), rows


def test_the_evaluator_commits_its_snapshotted_offsets(settings: Settings, tmp_path: Path) -> None:
    from edml.evaluation.config import EvaluationConfig
    from edml.schemas.serde import prediction_serde
    from edml.trainer.records import dropoff_serde

    from tests.integration.test_evaluation import T0, dropoff, prediction, produce, run_to_end

    n = 200
    preds = [prediction(f"trip-{i}", T0 + i * 1000, 600.0) for i in range(n)]
    produce(settings, settings.topics.predictions, preds, prediction_serde())
    produce(settings, settings.topics.labels, [dropoff(p.trip_id, p.event_time, 610.0) for p in preds],
            dropoff_serde())
    run_to_end(settings, EvaluationConfig(), recovery=tmp_path / "recovery")
    rows = group_lag(settings, "edml-evaluation", settings.topics.labels)
    rows.update({-1 - p: row for p, row in group_lag(settings, "edml-evaluation", settings.topics.predictions).items()})
    committed, lag = sum(c for c, _ in rows.values()), sum(lag for _, lag in rows.values())
    print(f"\n[evaluator lag] predictions={n} dropoffs={n}: group edml-evaluation committed={committed} lag={lag}")
    assert committed == 2 * n and lag == 0, rows
