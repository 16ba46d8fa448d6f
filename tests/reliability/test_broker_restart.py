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

pytestmark = pytest.mark.kafka
OUTAGE_S = 8.0


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
    publish(settings, tiny_models.v1, "v1")
    with running(ScorerProcess(settings)) as scorer:
        scorer.wait_healthy(120)
        pid = scorer.proc.pid
        trips = BackgroundTrips(settings, generate_trips(2000, seed=21), rate=100).start()
        wait_for(lambda: len(predictions(settings)) >= 300, 60, scorer)
        own_broker.kill()
        killed_at = time.monotonic()
        time.sleep(OUTAGE_S)
        events_during_outage = metric(scorer.metrics(), "edml_events_in_total")
        alive_during_outage = scorer.proc.poll() is None
        own_broker.up()
        print(f"\n[broker restart] broker down for {time.monotonic() - killed_at:.1f}s; "
              f"scorer alive during the outage={alive_during_outage}; events read before the restart="
              f"{events_during_outage:.0f}")
        trips.join()
        wait_for(lambda: len({p.trip_id for p in predictions(settings)}) >= len(trips.ids), 180, scorer)
        assert scorer.proc.poll() is None and scorer.proc.pid == pid, "the scorer must reconnect, not restart"
        log = scorer.log()
    tally = Tally.read("broker restart", settings, trips.ids).print()
    assert alive_during_outage
    tally.assert_nothing_lost()
    assert not tally.dead
    reconnect_lines = [line for line in log.splitlines() if "Connection refused" in line or "Disconnected" in line]
    print(f"[broker restart] client log lines about the outage={len(reconnect_lines)}")
