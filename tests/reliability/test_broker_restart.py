"""The broker dies (kill -9) mid-stream and comes back on the same data: the scorer rides it out.

A dedicated broker (not the session's), so killing it disturbs no other test. Every client
reaches it over SASL_SSL (SCRAM-SHA-512, a private CA) only, so the run also proves that the
``[kafka]`` settings reach every client the scorer, the publisher and the producers create.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from edml.trainer.generator import generate_trips
from edml.trainer.producing import produce_trips

from edml.core.config import Settings, Topics
from edml.kafka.reading import read_to_end
from edml.kafka.sink import KafkaMessageSink, OutgoingMessage
from edml.kafka.topics import create_topics
from tests.helpers.ports import free_ports
from tests.integration.scorer_process import ScorerProcess, predictions, wait_until
from tests.reliability.harness import BackgroundTrips, TinyModels, metric, publish, running, wait_for
from tests.reliability.secure_broker import SaslSslBroker
from tests.reliability.tally import Tally

pytestmark = pytest.mark.kafka
OUTAGE_S = 8.0
# Shorter than the outage: the sink's deliveries time out and must be produced again, not dropped
DELIVERY_TIMEOUT_MS = "4000"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[SaslSslBroker]:
    """A broker of this test alone, with a SASL_SSL listener."""
    port = free_ports(3)  # client, controller and SASL_SSL ports, reserved together
    broker = SaslSslBroker(tmp_path / "kafka", port=port, controller_port=port + 1, sasl_port=port + 2)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


def test_broker_kill_9_and_restart_mid_stream_over_sasl_ssl(own_broker: SaslSslBroker, tmp_path: Path,
                                                            tiny_models: TinyModels) -> None:
    settings = Settings(bootstrap_servers=own_broker.secure_bootstrap_servers, partitions=2,
                        topics=Topics().with_prefix(f"b{uuid.uuid4().hex[:6]}-"), state_dir=tmp_path / "state",
                        kafka=own_broker.client_settings())
    env = {"EDML_KAFKA_MESSAGE_TIMEOUT_MS": DELIVERY_TIMEOUT_MS}
    env.update({"EDML_KAFKA_" + k.upper().replace(".", "_"): v for k, v in settings.kafka.items()})
    create_topics(settings)
    # The scorer starts without a model and holds the trips topic while its consumers fetch a
    # backlog ahead; the broker dies right when v1 activates, so the backlog's predictions are
    # in flight (or not yet produced) when it goes. More trips keep coming through the outage.
    backlog = generate_trips(15_000, seed=21)
    with running(ScorerProcess(settings, env=env)) as scorer:
        wait_for(lambda: _held(scorer), 120, scorer, "partitions held")
        pid = scorer.proc.pid
        produce_trips(settings, backlog)
        time.sleep(2)
        trips = BackgroundTrips(settings, generate_trips(1500, seed=22), rate=100).start()
        publish(settings, tiny_models.v1, "v1")
        wait_until(scorer.healthy, 60, interval=0.01, message=scorer.log())
        at_kill = metric(scorer.metrics(), "edml_predictions_out_total")
        own_broker.kill()
        killed_at = time.monotonic()
        # the scorer's sink, driven directly: its batch is written while the broker is down
        sink_batch = [OutgoingMessage(settings.topics.alerts, b"k%d" % i, b"v%d" % i) for i in range(100)]
        sink = KafkaMessageSink(settings, message_timeout_ms=int(DELIVERY_TIMEOUT_MS)).build("probe", 0, 1)
        writing = threading.Thread(target=sink.write_batch, args=([sink_batch],), daemon=True)
        writing.start()
        time.sleep(OUTAGE_S)
        events_during_outage = metric(scorer.metrics(), "edml_events_in_total")
        alive_during_outage = scorer.proc.poll() is None
        own_broker.up()
        print(f"\n[broker restart] broker down for {time.monotonic() - killed_at:.1f}s (until it answered again); "
              f"scorer alive during the outage={alive_during_outage}; events read before the restart="
              f"{events_during_outage:.0f}; predictions out at the kill={at_kill:.0f}")
        writing.join(60)
        sink_done = not writing.is_alive()
        sink.close()
        trips.join()
        sent = [t.pickup.trip_id for t in backlog] + trips.ids
        wait_for(lambda: len({p.trip_id for p in predictions(settings)}) >= len(sent), 180, scorer)
        assert scorer.proc.poll() is None and scorer.proc.pid == pid, "the scorer must reconnect, not restart"
        log = scorer.log(tail=None)
    tally = Tally.read("broker restart", settings, sent).print()
    assert alive_during_outage
    tally.assert_nothing_lost()
    assert not tally.dead
    probe = read_to_end(settings, settings.topics.alerts)
    print(f"[broker restart] sink batch written during the outage: {len(sink_batch)} messages, "
          f"{len({m.key for m in probe})} on the topic after the restart")
    assert sink_done and {m.key for m in probe} == {m.key for m in sink_batch}
    print(f"[broker restart] every client over {settings.kafka['security.protocol']} "
          f"{settings.kafka['sasl.mechanism']} as {settings.kafka['sasl.username']} with CA file "
          f"{Path(settings.kafka['ssl.ca.location']).name}")
    assert "kafka: security.protocol=SASL_SSL sasl.mechanism=SCRAM-SHA-512" in log
    assert settings.kafka["sasl.password"] not in log, "the password must not reach the log"
    refused = sum("Connection refused" in line for line in log.splitlines())
    assert refused > 0, "the scorer's clients saw the broker go"
    redelivered = [line.split("WARNING ", 1)[1] for line in log.splitlines() if "not delivered" in line]
    print(f"[broker restart] scorer log: {refused} refused connections, {len(redelivered)} re-delivery rounds "
          f"(delivery timeout {DELIVERY_TIMEOUT_MS} ms)")
    for line in redelivered[:3]:
        print(f"  {line}")


def _held(scorer: ScorerProcess) -> bool:
    try:
        return "edml_held_events{" in scorer.metrics()
    except OSError:
        return False
