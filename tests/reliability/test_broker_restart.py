"""The broker dies (kill -9) mid-stream and comes back on the same data: the scorer rides it out.

A dedicated broker (not the session's), so killing it disturbs no other test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edml.config import Settings, Topics
from edml.kafka.local_broker import LocalBroker, free_port
from edml.kafka.topics import create_topics
from tests.integration.scorer_process import ScorerProcess, predictions
from tests.reliability.harness import BackgroundTrips, TinyModels, metric, publish, running, wait_for
from tests.reliability.tally import Tally
from trainer.generator import generate_trips
from trainer.producing import produce_trips

pytestmark = pytest.mark.kafka
OUTAGE_S = 8.0
# Shorter than the outage: the sink's deliveries time out and must be produced again, not dropped
DELIVERY_TIMEOUT_MS = "4000"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of this test alone."""
    broker = LocalBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


def test_broker_kill_9_and_restart_mid_stream(own_broker: LocalBroker, tmp_path: Path,
                                              tiny_models: TinyModels) -> None:
    settings = Settings(bootstrap_servers=own_broker.bootstrap_servers, partitions=2,
                        topics=Topics().with_prefix(f"b{uuid.uuid4().hex[:6]}-"), state_dir=tmp_path / "state")
    create_topics(settings)
    # A backlog the scorer works through in big batches, so the broker dies while the sink has
    # predictions in flight and the source has fetched events ahead; more trips keep coming.
    backlog = generate_trips(15_000, seed=21)
    produce_trips(settings, backlog)
    publish(settings, tiny_models.v1, "v1")
    with running(ScorerProcess(settings, env={"EDML_KAFKA_MESSAGE_TIMEOUT_MS": DELIVERY_TIMEOUT_MS})) as scorer:
        wait_for(lambda: scorer.healthy() and metric(scorer.metrics(), "edml_predictions_out_total") >= 2000, 120,
                 scorer, "2000 predictions")
        pid = scorer.proc.pid
        trips = BackgroundTrips(settings, generate_trips(1500, seed=22), rate=100).start()
        at_kill = metric(scorer.metrics(), "edml_predictions_out_total")
        own_broker.kill()
        killed_at = time.monotonic()
        time.sleep(OUTAGE_S)
        events_during_outage = metric(scorer.metrics(), "edml_events_in_total")
        alive_during_outage = scorer.proc.poll() is None
        own_broker.up()
        print(f"\n[broker restart] broker down for {time.monotonic() - killed_at:.1f}s (until it answered again); "
              f"scorer alive during the outage={alive_during_outage}; events read before the restart="
              f"{events_during_outage:.0f}; predictions out at the kill={at_kill:.0f}")
        trips.join()
        sent = [t.pickup.trip_id for t in backlog] + trips.ids
        wait_for(lambda: len({p.trip_id for p in predictions(settings)}) >= len(sent), 180, scorer)
        assert scorer.proc.poll() is None and scorer.proc.pid == pid, "the scorer must reconnect, not restart"
        log = scorer.log()
    tally = Tally.read("broker restart", settings, sent).print()
    assert alive_during_outage
    tally.assert_nothing_lost()
    assert not tally.dead
    refused = sum("Connection refused" in line for line in log.splitlines())
    redelivered = [line.split("WARNING ", 1)[1] for line in log.splitlines() if "not delivered" in line]
    print(f"[broker restart] scorer log: {refused} refused connections, {len(redelivered)} re-delivery rounds "
          f"(delivery timeout {DELIVERY_TIMEOUT_MS} ms)")
    for line in redelivered[:3]:
        print(f"  {line}")
