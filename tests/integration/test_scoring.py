"""The scoring dataflow against a real broker: `edml serve` as a subprocess, real SavedModels.

Every test prints what it sent, what came out and what went to dead letters.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from edml.model_topic.history import desired_records
from edml.model_topic.publisher import publish_model
from edml.schemas.records import Prediction
from edml.schemas.serde import prediction_serde
from edml.trainer.generator import generate_trips
from edml.trainer.producing import produce_trips
from edml.trainer.records import trip_serde

from edml.core.config import Settings, Topics
from edml.kafka.clients import make_producer
from edml.kafka.reading import read_to_end
from edml.kafka.topics import create_topics
from tests.helpers.ports import free_ports
from tests.integration.scorer_process import (
    ScorerProcess,
    dead_letters,
    predictions,
    statuses,
    wait_until,
)
from tests.reliability.tally import Tally

pytestmark = pytest.mark.kafka
NAME = "trip-duration"


def publish(settings: Settings, model_dir: Path, version: str) -> None:
    """Publish a trained folder under an explicit version (the gate's metric check is forced)."""
    publish_model(settings, model_dir, NAME, version=version, force=True)


def report(label: str, sent: int, preds: list[Prediction], dead: int = 0) -> None:
    unique = len({p.trip_id for p in preds})
    print(f"[{label}] sent={sent} predictions={len(preds)} unique_trips={unique} "
          f"duplicates={len(preds) - unique} dead_letters={dead}")


def test_every_trip_gets_one_prediction_with_lineage(settings: Settings, trained_model_dir: Path) -> None:
    publish(settings, trained_model_dir, "v1")
    trips = generate_trips(1500, seed=11)
    produce_trips(settings, trips)
    scorer = ScorerProcess(settings).start()
    try:
        wait_until(lambda: len(predictions(settings)) >= len(trips), 120, message=scorer.log())
        time.sleep(1)
        preds = predictions(settings)
        metrics_text = scorer.metrics()
    finally:
        scorer.stop()
    report("v1", len(trips), preds)
    assert len(preds) == len(trips)
    assert {p.trip_id for p in preds} == {t.pickup.trip_id for t in trips}
    pickup_time = {t.pickup.trip_id: t.pickup.pickup_time for t in trips}
    for p in preds:
        assert (p.model_name, p.model_version, p.role) == (NAME, "v1", "champion")
        assert p.event_time == pickup_time[p.trip_id]
        assert p.latency_ms >= 0 and p.scored_at > 0
        assert math.isfinite(p.predicted_duration_s) and p.predicted_duration_s > 0
    assert f'edml_active_model_info{{model_name="{NAME}",role="champion",version="v1"}} 1.0' in metrics_text
    assert f"edml_events_in_total {float(len(trips))}" in metrics_text
    # batches, not events: far fewer model calls than trips
    calls = float(next(line.split()[-1] for line in metrics_text.splitlines()
                       if line.startswith("edml_model_call_seconds_count")))
    print(f"[v1] model calls={calls:.0f} for {len(trips)} trips")
    assert calls < len(trips) / 10


def test_bad_events_go_to_dead_letters_and_their_batch_is_scored(settings: Settings, trained_model_dir: Path) -> None:
    publish(settings, trained_model_dir, "v1")
    good = [g.pickup for g in generate_trips(40, seed=12)]
    serde = trip_serde()
    bad: list[tuple[str, bytes]] = [
        ("truncated", b"\x01\x02garbage"),
        ("unknown-fingerprint", b"\xc3\x01" + b"\x00" * 8 + serde.encode(good[0])[10:]),
    ]
    for kind, change in [("zone 9999", {"pickup_zone": 9999}), ("distance -3", {"trip_distance_km": -3.0}),
                         ("NaN distance", {"trip_distance_km": float("nan")})]:
        bad.append(("out-of-range", serde.encode(dataclasses.replace(good[1], trip_id=str(uuid.uuid4()), **change))))
        del kind
    producer = make_producer(settings)
    # all into one partition, interleaved with good trips, so bad and good share batches
    for i, trip in enumerate(good):
        producer.produce(settings.topics.trips, key=trip.trip_id.encode(), value=serde.encode(trip), partition=0)
        if i < len(bad):
            producer.produce(settings.topics.trips, key=b"bad-%d" % i, value=bad[i][1], partition=0)
    producer.flush(10)
    scorer = ScorerProcess(settings).start()
    try:
        wait_until(lambda: len(predictions(settings)) >= len(good) and len(dead_letters(settings)) >= len(bad),
                   120, message=scorer.log())
        assert scorer.proc.poll() is None, "the dataflow must keep running"
    finally:
        scorer.stop()
    preds, dead = predictions(settings), dead_letters(settings)
    report("bad events", len(good) + len(bad), preds, len(dead))
    assert {p.trip_id for p in preds} == {t.trip_id for t in good}
    assert sorted(d.error_kind for d in dead) == sorted(kind for kind, _ in bad)
    for d in dead:
        assert d.source_topic == settings.topics.trips and d.partition == 0 and d.offset >= 0
        assert d.message
        print(f"  dead letter offset={d.offset} kind={d.error_kind}: {d.message}")
    reasons = " ".join(d.message for d in dead)
    assert "9999" in reasons and "-3.0" in reasons and "nan" in reasons


def test_trips_before_any_model_are_held_then_scored(settings: Settings, trained_model_dir: Path) -> None:
    trips = generate_trips(800, seed=13)
    produce_trips(settings, trips)
    scorer = ScorerProcess(settings).start()
    try:
        wait_until(lambda: "edml_held_events" in scorer.metrics() if scorer.healthy() or _up(scorer) else False,
                   90, message=scorer.log())
        time.sleep(3)
        assert predictions(settings) == [], "nothing may be scored without a model"
        assert not scorer.healthy()
        held = sum(float(line.split()[-1]) for line in scorer.metrics().splitlines()
                   if line.startswith("edml_held_events{"))
        publish(settings, trained_model_dir, "v1")
        wait_until(lambda: len(predictions(settings)) >= len(trips), 120, message=scorer.log())
    finally:
        scorer.stop()
    preds = predictions(settings)
    report("held", len(trips), preds)
    print(f"[held] held_events_metric={held:.0f}")
    assert held == len(trips)
    assert {p.trip_id for p in preds} == {t.pickup.trip_id for t in trips}
    log = scorer.log(tail=None)
    assert "holds" in log and "resumes" in log


def _up(scorer: ScorerProcess) -> bool:
    try:
        scorer.metrics()
    except OSError:
        return False
    return True


class Traffic:
    """Trips produced at ~500/s in the background until the block ends, so a model change happens under traffic."""

    def __init__(self, settings: Settings, seed: int) -> None:
        self.settings, self.pool = settings, generate_trips(30_000, seed=seed)
        self.trips: list = []  # the trips produced so far
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._produce)

    def _produce(self) -> None:
        try:
            for i in range(0, len(self.pool), 250):
                if self._stop.is_set():
                    return
                produce_trips(self.settings, self.pool[i:i + 250], rate=500)
                self.trips.extend(self.pool[i:i + 250])
        except BaseException as e:  # noqa: BLE001 - raised when the block ends
            self._errors.append(e)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        assert not self._errors, self._errors


def change_under_traffic(settings: Settings, v1_dir: Path, seed: int, change: Callable[[], None],
                         done: Callable[[], bool]) -> list:
    """v1 serves trips flowing at ~500/s; ``change()`` the model topic, keep trips flowing until ``done()``;
    returns the trips produced once each has a prediction."""
    publish(settings, v1_dir, "v1")
    scorer = ScorerProcess(settings).start()
    try:
        scorer.wait_healthy()
        with Traffic(settings, seed=seed) as traffic:
            wait_until(lambda: len(predictions(settings)) >= 500, 60, message=scorer.log())
            change()
            wait_until(done, 120, message=scorer.log())
        trips = traffic.trips
        wait_until(lambda: len({p.trip_id for p in predictions(settings)}) >= len(trips), 120, message=scorer.log())
    finally:
        scorer.stop()
    return trips


def test_model_swap_while_trips_flow(settings: Settings, trained_model_dir: Path, trained_model_dir_v2: Path) -> None:
    trips = change_under_traffic(settings, trained_model_dir, 14, lambda: publish(settings, trained_model_dir_v2, "v2"),
                                 lambda: any(p.model_version == "v2" for p in predictions(settings)))
    preds = predictions(settings)
    report("swap", len(trips), preds)
    versions = {p.model_version for p in preds}
    print(f"[swap] v1={sum(p.model_version == 'v1' for p in preds)} v2={sum(p.model_version == 'v2' for p in preds)}")
    assert versions == {"v1", "v2"}
    assert {p.trip_id for p in preds} == {t.pickup.trip_id for t in trips}
    # per partition of the predictions topic (same key -> same partition as the trip), v1 never follows v2

    serde = prediction_serde()
    seen_v2: set[int] = set()
    for m in sorted(read_to_end(settings, settings.topics.predictions), key=lambda m: (m.partition, m.offset)):
        version = serde.decode(m.value).model_version
        if version == "v2":
            seen_v2.add(m.partition)
        assert not (version == "v1" and m.partition in seen_v2), f"v1 after v2 on partition {m.partition}"


def test_a_challenger_published_with_its_champions_record_never_scores_as_champion(
        settings: Settings, trained_model_dir: Path, trained_model_dir_v2: Path) -> None:
    # the candidate's own record, then the champion's naming it, in one flush (as edml autopilot
    # publishes a shadow challenger): the scorer applies them as one change
    def publish_challenger() -> None:
        v1 = desired_records(settings)[NAME]
        publish_model(settings, trained_model_dir_v2, NAME, version="v2", force=True,
                      then=lambda _v2: [dataclasses.replace(v1, challengers=["v2"])])

    trips = change_under_traffic(settings, trained_model_dir, 16, publish_challenger,
                                 lambda: len(predictions(settings, settings.topics.shadow_predictions)) >= 500)
    served = predictions(settings)
    shadow = predictions(settings, settings.topics.shadow_predictions)
    print(f"[challenger] trips={len(trips)} champion={len(served)} shadow={len(shadow)}")
    assert {(p.model_version, p.role) for p in served} == {("v1", "champion")}
    assert {(p.model_version, p.role) for p in shadow} == {("v2", "challenger")}


def test_restart_with_v1_then_v2_on_topic_never_scores_v1(settings: Settings, trained_model_dir: Path,
                                                          trained_model_dir_v2: Path) -> None:
    publish(settings, trained_model_dir, "v1")
    publish(settings, trained_model_dir_v2, "v2")
    trips = generate_trips(600, seed=15)
    produce_trips(settings, trips)
    scorer = ScorerProcess(settings).start()
    try:
        wait_until(lambda: len(predictions(settings)) >= len(trips), 120, message=scorer.log())
    finally:
        scorer.stop()
    preds = predictions(settings)
    report("bootstrap", len(trips), preds)
    assert {p.model_version for p in preds} == {"v2"}
    assert [s.version for s in statuses(settings) if s.status == "active"] == ["v2"]


def test_restart_loads_from_model_store_without_artifact_store(settings: Settings, trained_model_dir: Path) -> None:
    publish(settings, trained_model_dir, "v1")
    first, second = generate_trips(300, seed=16), generate_trips(300, seed=17)
    produce_trips(settings, first)
    scorer = ScorerProcess(settings).start()
    try:
        wait_until(lambda: len(predictions(settings)) >= len(first), 120, message=scorer.log())
    finally:
        scorer.stop()
    artifacts = Path(settings.artifact_store_uri.removeprefix("file://"))
    artifacts.rename(artifacts.with_name("artifacts-unreachable"))
    produce_trips(settings, second)
    scorer = ScorerProcess(settings).start()
    try:
        wait_until(lambda: len(predictions(settings)) >= len(first) + len(second), 120, message=scorer.log())
    finally:
        scorer.stop()
    preds = predictions(settings)
    report("model store", len(first) + len(second), preds)
    assert {p.trip_id for p in preds} == {t.pickup.trip_id for t in first + second}
    assert "from the model store" in scorer.log()


def test_two_processes_over_four_partitions(kafka_bootstrap: str, tmp_path: Path, trained_model_dir: Path) -> None:
    settings = Settings(bootstrap_servers=kafka_bootstrap, topics=Topics().with_prefix(f"p{uuid.uuid4().hex[:6]}-"),
                        partitions=4, state_dir=tmp_path / "state")
    create_topics(settings)
    publish(settings, trained_model_dir, "v1")
    trips = generate_trips(2000, seed=18)
    produce_trips(settings, trips)
    # both processes bind the metrics address given to the launcher, and only it
    scorer = ScorerProcess(settings, args=["--processes", "2", "--cluster-port", str(free_ports(2)),
                                           "--metrics-host", "127.0.0.2"], metrics_host="127.0.0.2").start()
    try:
        scorer.wait_healthy(120, process_index=0)
        scorer.wait_healthy(60, process_index=1)
        elsewhere = dataclasses.replace(scorer, metrics_host="127.0.0.1")
        assert not elsewhere.healthy(0) and not elsewhere.healthy(1)
        wait_until(lambda: len(predictions(settings)) >= len(trips), 120, message=scorer.log())
        infos = [m for i in range(2) for m in scorer.metrics(i).splitlines()
                 if m.startswith("edml_active_model_info{")]
        events = [float(next(line.split()[-1] for line in scorer.metrics(i).splitlines()
                             if line.startswith("edml_events_in_total"))) for i in range(2)]
    finally:
        scorer.stop()
    preds = predictions(settings)
    report("2 processes", len(trips), preds)
    print(f"[2 processes] events per process={events}")
    assert {p.trip_id for p in preds} == {t.pickup.trip_id for t in trips}
    assert len(infos) == 2 and all('version="v1"' in i for i in infos)
    assert all(e > 0 for e in events) and sum(events) == len(trips)
    # a normal start says nothing alarming (Bytewax's "error connecting to worker 0 ... retrying" included)
    alarming = [line for line in scorer.log(tail=None).splitlines() if "error" in line.lower()]
    assert alarming == [], "\n".join(alarming)


def test_one_failed_process_stops_the_local_cluster(kafka_bootstrap: str, tmp_path: Path,
                                                     trained_model_dir: Path) -> None:
    """A cluster missing a process cannot score: the launcher stops the rest and exits with the error."""
    import socket

    settings = Settings(bootstrap_servers=kafka_bootstrap, topics=Topics().with_prefix(f"f{uuid.uuid4().hex[:6]}-"),
                        partitions=2, state_dir=tmp_path / "state")
    create_topics(settings)
    publish(settings, trained_model_dir, "v1")
    scorer = ScorerProcess(settings, args=["--processes", "2", "--cluster-port", str(free_ports(2))])
    with socket.socket() as taken:  # process 1's metrics port
        taken.bind(("0.0.0.0", scorer.metrics_port + 1))
        taken.listen()
        scorer.start()
        try:
            # two processes load TensorFlow before one fails: minutes on a loaded 2-core machine
            wait_until(lambda: scorer.proc.poll() is not None, 300, message=scorer.log())
        finally:
            scorer.kill()
    print(f"[one failed process] exit code {scorer.proc.returncode}")
    assert scorer.proc.returncode == 2
    assert f"metrics port {scorer.metrics_port + 1} is not free" in scorer.log()


def committed_trips(settings: Settings) -> int:
    """How many trips the scorer's consumer group has committed (offsets of its snapshots), over every partition."""
    from confluent_kafka import TopicPartition

    from edml.kafka.clients import make_consumer

    consumer = make_consumer(settings, group_id="edml-scoring")
    try:
        parts = [TopicPartition(settings.topics.trips, p) for p in range(settings.partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


def wait_for_commit(settings: Settings, above: int) -> int:
    """Wait until the scorer's group has committed more than ``above`` trips; that count."""
    wait_until(lambda: committed_trips(settings) > above, 60, message="no snapshot committed its offsets")
    return committed_trips(settings)


@pytest.mark.parametrize("epoch_interval", [60, 1], ids=["before-the-first-snapshot", "after-snapshots"])
def test_kill_9_and_restart_loses_nothing(settings: Settings, trained_model_dir: Path, epoch_interval: int) -> None:
    publish(settings, trained_model_dir, "v1")
    trips = generate_trips(4000, seed=19)
    scorer = ScorerProcess(settings, args=["--epoch-interval", str(epoch_interval)]).start()
    scorer.wait_healthy()
    producing = threading.Thread(target=produce_trips, args=(settings, trips), kwargs={"rate": 1000})
    producing.start()
    wait_until(lambda: len(predictions(settings)) >= 1200, 60, message=scorer.log())
    if epoch_interval == 1:
        # a snapshot that covers scored trips must be on disk before the kill: the scorer commits
        # each snapshot's offsets to its group, so the second commit with trips in it proves the first
        first = wait_for_commit(settings, above=0)
        wait_for_commit(settings, above=first)
    scorer.kill()
    killed_at = len(predictions(settings))
    producing.join()
    scorer = ScorerProcess(settings).start()
    try:
        wait_until(lambda: len({p.trip_id for p in predictions(settings)}) >= len(trips), 120, message=scorer.log())
    finally:
        scorer.stop()
    # the restart scored again the trips read since the last snapshot: each repeat must carry the
    # bytes of the first prediction, wall-clock scored_at and latency included
    tally = Tally.read(f"kill -9, {epoch_interval}s epochs", settings, (t.pickup.trip_id for t in trips)).print()
    print(f"[kill -9, {epoch_interval}s epochs] predictions before the kill={killed_at} "
          f"trips predicted again={tally.repeated_trips}")
    tally.assert_nothing_lost()
    if epoch_interval == 60:  # no snapshot yet: the restart read every trip again
        assert tally.repeated_trips == killed_at
    else:
        assert tally.repeated_trips < killed_at, "the restart did not resume from a snapshot"
        if not tally.repeated_trips:
            pytest.skip("the kill came right after a snapshot: no trip was scored twice to compare")


