"""The evaluation dataflow against a real broker: joins, expiry, restart, v1 vs v2 after drift, PSI, promote.

Predictions are made here by real SavedModels (one signature call per batch) and produced as
Prediction records, so that the evaluation is tested on its own. Every test prints its figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main
from confluent_kafka import TopicPartition
from edml.dataflows.evaluation import drift_features, pipeline_flow
from edml.evaluation.config import EvaluationConfig
from edml.evaluation.drift import load_reference
from edml.evaluation.join import EVALUATED, NO_PREDICTION
from edml.evaluation.scores import read_score_windows
from edml.schemas.records import DriftAlert, Evaluation, ModelRecord, ModelSignature, Prediction
from edml.schemas.serde import dead_letter_serde, drift_alert_serde, evaluation_serde, prediction_serde
from edml.trainer.generator import DEFAULT_START_MS, Drift, TripColumns, generate_columns
from edml.trainer.records import TripDropoff, dropoff_serde, trip_serde
from typer.testing import CliRunner

from edml.cli import app
from edml.core.config import Settings, Topics
from edml.kafka.clients import make_admin, make_consumer, make_producer
from edml.kafka.reading import read_to_end, wait_for_count
from edml.kafka.topics import create_topics
from edml.pipelines.bound import open_pipeline
from tests.helpers.ports import free_port

pytestmark = pytest.mark.kafka

H = 3_600_000
DAY = 24 * H
NAME = "trip-duration"
# traffic starts after the 28 days v1 was trained on
T0 = DEFAULT_START_MS + 28 * DAY


# --- helpers ---------------------------------------------------------------------------------


def produce(settings: Settings, topic: str, records: list, serde) -> None:  # noqa: ANN001 - any serde
    producer = make_producer(settings)
    for r in records:
        producer.produce(topic, key=r.trip_id.encode(), value=serde.encode(r))
        producer.poll(0)
    assert producer.flush(30) == 0


def prediction(trip_id: str, pickup: int, predicted: float, version: str = "v1", role: str = "champion") -> Prediction:
    return Prediction(trip_id, float(predicted), NAME, version, pickup, pickup + 20, 20.0, role)


def dropoff(trip_id: str, pickup: int, duration_s: float) -> TripDropoff:
    return TripDropoff(trip_id, pickup + round(duration_s * 1000), duration_s)


def evaluations(settings: Settings) -> list[Evaluation]:
    return [evaluation_serde().decode(m.value) for m in read_to_end(settings, settings.topics.evaluations)]


def run_to_end(settings: Settings, config: EvaluationConfig, reference=None, recovery: Path | None = None) -> None:  # noqa: ANN001
    """Run the dataflow in this process until the end of its input topics."""
    recovery_config = None
    if recovery is not None:
        if not recovery.exists():
            recovery.mkdir(parents=True)
            init_db_dir(recovery, 1)
        recovery_config = RecoveryConfig(str(recovery))
    run_main(pipeline_flow(settings, config, open_pipeline(None, settings), reference, tail=False),
             recovery_config=recovery_config)


def own_settings(kafka_bootstrap: str, state_dir: Path) -> Settings:
    s = Settings(bootstrap_servers=kafka_bootstrap, topics=Topics().with_prefix(f"t{uuid.uuid4().hex[:8]}-"),
                 partitions=2, state_dir=state_dir)
    create_topics(s)
    return s


@dataclass
class Evaluator:
    """``edml evaluate`` as a subprocess, pointed at the test's topics."""

    settings: Settings
    args: list[str]
    log: Path
    metrics_port: int
    proc: subprocess.Popen | None = None

    def start(self) -> Evaluator:
        prefix = self.settings.topics.trips.removesuffix("trips")
        env = {**os.environ, "EDML_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers, "EDML_TOPIC_PREFIX": prefix,
               "EDML_STATE_DIR": str(self.settings.state_dir)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edml.cli", "evaluate", "--metrics-port", str(self.metrics_port),
                 "--epoch-interval", "0.5", *self.args],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def metric(self, line_start: str, timeout: float = 30) -> float:
        """The value of the first metrics line starting with ``line_start`` (waits for it to appear)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read()
                for line in text.decode().splitlines():
                    if line.startswith(line_start):
                        return float(line.rsplit(" ", 1)[1])
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"no metric {line_start} within {timeout}s; log:\n{self.log.read_text()[-3000:]}")

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def output(self) -> str:
        """The end of the log of every run so far."""
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            tail = self.log.read_text()[-3000:]
            raise AssertionError(f"edml evaluate did not stop on SIGTERM; log:\n{tail}") from None


@pytest.fixture
def evaluator(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Evaluator]]:
    started: list[Evaluator] = []

    def start(*args: str) -> Evaluator:
        ev = Evaluator(settings, list(args), tmp_path / "evaluate.log", free_port()).start()
        started.append(ev)
        return ev

    yield start
    for ev in started:
        if ev.proc is not None and ev.proc.poll() is None:
            ev.stop()


def delete_all_records(settings: Settings, topics: list[str]) -> None:
    """Delete every record of ``topics`` up to their ends, as retention would."""
    admin = make_admin(settings)
    consumer = make_consumer(settings)
    ends = []
    for topic in topics:
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends.append(TopicPartition(topic, p, high))
    consumer.close()
    for future in admin.delete_records(ends).values():
        future.result(timeout=30)


def background(start: int, n: int, prefix: str) -> tuple[list[Prediction], list[TripDropoff]]:
    """``n`` ordinary 10-minute trips every 6 minutes from ``start``: they keep the join's clocks moving."""
    preds, drops = [], []
    for i in range(n):
        pickup = start + i * 360_000
        preds.append(prediction(f"{prefix}{i}", pickup, 630.0))
        drops.append(dropoff(f"{prefix}{i}", pickup, 600.0))
    return preds, drops


# --- join, expiry, restart -------------------------------------------------------------------


def test_dropoff_first_three_hours_late_and_orphan_across_a_restart(settings: Settings, evaluator) -> None:  # noqa: ANN001
    """Drop-off before its prediction, one 3 h after, one never predicted; `edml evaluate` restarted between."""
    t = settings.topics
    args = ["--no-drift", "--join-shards", "2"]
    # before the restart: A's drop-off (its prediction comes later), B's prediction (its trip takes
    # 3 h 05 min), C's drop-off (never predicted), and traffic around them
    bg_preds, bg_drops = background(T0, 20, "bg-")
    produce(settings, t.predictions, [prediction("B", T0, 9000.0), *bg_preds], prediction_serde())
    produce(settings, t.labels, [dropoff("A", T0 + 600_000, 600.0), dropoff("C", T0 + 1_200_000, 900.0), *bg_drops],
            dropoff_serde())

    junk = make_producer(settings)
    junk.produce(t.labels, key=b"junk", value=b"not a drop-off")
    junk.flush(10)

    first = evaluator(*args, "--stop-at-end")  # a bounded run: it stops by itself at the end of the input
    assert first.wait() == 0, first.output()
    dead = [dead_letter_serde().decode(m.value) for m in read_to_end(settings, t.dead_letter)]
    assert [(d.source_topic, d.key, d.error_kind) for d in dead] == [(t.labels, b"junk", "bad-magic")], dead
    before = evaluations(settings)
    assert {e.key for e in before} == {p.trip_id for p in bg_preds}, ("A, B and C must still be pending", before)
    # retention takes the input away: after the restart A and B can only be joined from recovered state
    delete_all_records(settings, [t.predictions, t.labels])

    # after the restart: A's prediction, B's drop-off 3 h later, and traffic more than a day on
    produce(settings, t.predictions, [prediction("A", T0 + 600_000, 650.0)], prediction_serde())
    produce(settings, t.labels, [dropoff("B", T0, 3 * 3600 + 300)], dropoff_serde())
    later_preds, later_drops = background(T0 + 26 * H, 20, "later-")
    produce(settings, t.predictions, later_preds, prediction_serde())
    produce(settings, t.labels, later_drops, dropoff_serde())

    second = evaluator(*args)  # tails the topics until stopped
    expired_dropoffs = second.metric('edml_eval_expired_total{side="label"}')
    found = wait_for_count(settings, t.evaluations, 43, timeout=60)
    assert second.stop() == 0, second.output()  # SIGTERM
    outcomes = {}
    for e in (evaluation_serde().decode(m.value) for m in found):
        outcomes.setdefault(e.key, set()).add(e.outcome)
    a = next(e for e in evaluations(settings) if e.key == "A")
    b = next(e for e in evaluations(settings) if e.key == "B")
    c = next(e for e in evaluations(settings) if e.key == "C")
    print(f"[join] A={a.outcome} error={a.error} B={b.outcome} actual={b.actual} error={b.error} "
          f"C={c.outcome}; expired drop-offs (metric)={expired_dropoffs}")
    assert outcomes["A"] == {EVALUATED} and a.error == 50.0
    assert outcomes["B"] == {EVALUATED} and b.actual == 11100.0 and b.error == 9000.0 - 11100.0
    assert outcomes["C"] == {NO_PREDICTION} and c.actual == 900.0
    assert expired_dropoffs == 1.0
    # nothing else expired: every other trip met its other side
    assert all(o == {EVALUATED} for trip, o in outcomes.items() if trip != "C")


# --- v1 vs v2 after drift, scores, promote ----------------------------------------------------


def _predict(model_dir: Path, cols: TripColumns) -> np.ndarray:
    from edml.trainer.predict import predict_rows
    from edml.trainer.train import model_inputs

    return predict_rows(model_dir / "saved_model", model_inputs(cols)).astype(np.float64)


@pytest.fixture(scope="module")
def drifted_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v2: the same trainer on recent data, i.e. after traffic slowed down (speeds halved)."""
    from edml.trainer.train import TrainConfig, train_columns

    recent = generate_columns(10_000, seed=2, drift=Drift(DEFAULT_START_MS, slowdown=1.0))
    out = tmp_path_factory.mktemp("model-v2-recent")
    return train_columns(recent, out, TrainConfig(epochs=4, seed=2), data_source="generated:drifted").out_dir


def _record(version: str, challengers: list[str] | None = None) -> ModelRecord:
    return ModelRecord(NAME, version, f"file:///models/{NAME}/{version}.tar.gz", "00" * 32, 1,
                       ModelSignature([], []), trained_at=0, challengers=challengers or [])


def test_v2_trained_on_recent_data_beats_v1_after_drift_and_is_promoted(
    settings: Settings, trained_model_dir: Path, drifted_model_dir: Path
) -> None:
    from edml.model_topic.publisher import desired_records, publish_record

    t = settings.topics
    drift_at = T0 + 8 * H
    cols = generate_columns(2400, seed=21, start_ms=T0, drift=Drift(drift_at, slowdown=1.0), span_days=1)
    v1, v2 = _predict(trained_model_dir, cols), _predict(drifted_model_dir, cols)
    trips = cols.trips()
    champion = [prediction(g.pickup.trip_id, g.pickup.pickup_time, p, "v1") for g, p in zip(trips, v1, strict=True)]
    shadow = [prediction(g.pickup.trip_id, g.pickup.pickup_time, p, "v2", "challenger")
              for g, p in zip(trips, v2, strict=True)]
    produce(settings, t.predictions, champion, prediction_serde())
    produce(settings, t.shadow_predictions, shadow, prediction_serde())
    produce(settings, t.labels, [g.dropoff for g in trips], dropoff_serde())

    run_to_end(settings, EvaluationConfig(window_ms=4 * H))

    windows = read_score_windows(settings, NAME)
    by = {(w.model_version, w.window_start): w for w in windows}
    starts = sorted({w.window_start for w in windows})
    for s in starts:
        a, b = by[("v1", s)], by[("v2", s)]
        print(f"[v1 vs v2] window {(s - T0) / H:+5.1f}h trips={a.count:4d} v1 MAE={a.mae:6.1f} "
              f"v2 MAE={b.mae:6.1f} (v1 bias {a.bias:+.0f}, v2 bias {b.bias:+.0f}, revisions {a.revision})")
    after = [s for s in starts if s >= drift_at + H and by[("v1", s)].count >= 50]
    before = [s for s in starts if s + 4 * H <= drift_at and by[("v1", s)].count >= 50]
    assert len(after) >= 3 and before
    assert all(by[("v2", s)].mae < by[("v1", s)].mae for s in after)  # after the drift v2 is better...
    assert all(by[("v1", s)].mae < by[("v2", s)].mae for s in before)  # ...and before it, v1 was
    assert sum(w.count for w in windows if w.model_version == "v1") == len(trips)  # every trip, none lost
    assert {w.role for w in windows if w.model_version == "v2"} == {"challenger"}

    # `edml scores` shows them side by side
    runner = CliRunner()
    env = {"EDML_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "EDML_TOPIC_PREFIX": t.trips.removesuffix("trips"), "EDML_STATE_DIR": str(settings.state_dir)}
    plot = settings.state_dir / "scores.png"
    shown = runner.invoke(app, ["scores", "--last", "3", "--plot", str(plot)], env=env)
    assert shown.exit_code == 0, shown.output
    assert "v1" in shown.output and "v2" in shown.output and "challenger" in shown.output
    assert f"wrote {plot}" in shown.output and plot.read_bytes()[:4] == b"\x89PNG"
    print(shown.output)

    # promote: v1 champion with v2 in shadow on the model topic
    publish_record(settings, _record("v2"))
    publish_record(settings, _record("v1", challengers=["v2"]))
    too_few = runner.invoke(app, ["promote", NAME, "--challenger", "v2", "--windows", "12"], env=env)
    print(too_few.output)
    assert too_few.exit_code == 1 and "only" in too_few.output  # a day holds fewer than 12 windows of 4 h
    assert desired_records(settings)[NAME].version == "v1"
    promoted = runner.invoke(app, ["promote", NAME, "--challenger", "v2", "--windows", "3"], env=env)
    print(promoted.output)
    assert promoted.exit_code == 0, promoted.output
    desired = desired_records(settings)[NAME]
    assert (desired.version, desired.challengers) == ("v2", ["v1"])
    back = runner.invoke(app, ["promote", NAME, "--challenger", "v1", "--windows", "3"], env=env)
    assert back.exit_code == 1 and desired_records(settings)[NAME].version == "v2"
    forced = runner.invoke(app, ["promote", NAME, "--challenger", "v1", "--windows", "3", "--force"], env=env)
    assert forced.exit_code == 0 and "forced" in forced.output
    assert desired_records(settings)[NAME].version == "v1"


def test_shadow_challenger_is_scored_live_beside_the_champion_and_evaluated(
    settings: Settings, trained_model_dir: Path, drifted_model_dir: Path
) -> None:
    """`edml serve` with v1 champion and v2 in shadow: v2 never reaches the predictions topic; both are evaluated."""
    from edml.model_topic.publisher import desired_records, publish_model, publish_record

    from tests.integration.scorer_process import ScorerProcess, predictions, wait_until

    t = settings.topics
    publish_model(settings, drifted_model_dir, NAME, version="v2", force=True)
    publish_model(settings, trained_model_dir, NAME, version="v1", force=True)
    v1 = desired_records(settings)[NAME]
    publish_record(settings, dataclasses.replace(v1, challengers=["v2"], signature_ed25519=None))

    trips = generate_columns(300, seed=41, start_ms=T0, span_days=0.5).trips()
    scorer = ScorerProcess(settings).start()
    try:
        scorer.wait_healthy()
        produce(settings, t.trips, [g.pickup for g in trips], trip_serde())
        produce(settings, t.labels, [g.dropoff for g in trips], dropoff_serde())
        wait_until(lambda: len(read_to_end(settings, t.shadow_predictions)) >= len(trips), timeout=90,
                   message=f"challenger predictions missing; scorer log:\n{scorer.log()}")
        wait_until(lambda: len(read_to_end(settings, t.predictions)) >= len(trips), timeout=30)
    finally:
        scorer.stop()
    main, shadow = predictions(settings), predictions(settings, t.shadow_predictions)
    ids = {g.pickup.trip_id for g in trips}
    assert {(p.model_version, p.role) for p in main} == {("v1", "champion")}  # never a challenger's
    assert {(p.model_version, p.role) for p in shadow} == {("v2", "challenger")}
    assert {p.trip_id for p in main} == {p.trip_id for p in shadow} == ids

    run_to_end(settings, EvaluationConfig(window_ms=4 * H))
    windows = read_score_windows(settings, NAME)
    trips_per_version = {v: sum(w.count for w in windows if w.model_version == v) for v in ("v1", "v2")}
    mae = {v: sum(w.mae * w.count for w in windows if w.model_version == v) / trips_per_version[v]
           for v in ("v1", "v2")}
    print(f"[shadow] {len(main)} champion and {len(shadow)} shadow predictions; evaluated {trips_per_version}; "
          f"MAE v1={mae['v1']:.1f}s v2={mae['v2']:.1f}s (no drift: v1 fits this traffic)")
    assert trips_per_version == {"v1": len(trips), "v2": len(trips)}
    assert mae["v1"] < mae["v2"]


# --- drift --------------------------------------------------------------------------------------


@pytest.mark.parametrize("slowdown", [0.0, 1.0], ids=["no-drift", "drift"])
def test_the_drift_knob_raises_a_psi_alert_and_no_drift_raises_none(
    settings: Settings, trained_model_dir: Path, tmp_path: Path, slowdown: float
) -> None:
    t = settings.topics
    known = drift_features(open_pipeline(None, settings)).names
    reference = load_reference(trained_model_dir / "reference.json", known)
    assert "duration_s" in reference.features  # the trainer describes the target too
    drift = Drift(T0 + DAY, slowdown) if slowdown else None
    trips = generate_columns(3000, seed=31, start_ms=T0, drift=drift, span_days=2).trips()
    produce(settings, t.trips, [g.pickup for g in trips], trip_serde())
    produce(settings, t.labels, [g.dropoff for g in trips], dropoff_serde())

    run_to_end(settings, EvaluationConfig(), reference)

    alerts: list[DriftAlert] = [drift_alert_serde().decode(m.value) for m in read_to_end(settings, t.alerts)]
    for a in alerts:
        print(f"[drift slowdown={slowdown}] ALERT {a.feature} PSI={a.psi:.3f} window +{(a.window_start - T0) / H:.0f}h "
              f"count={a.count}")
    from edml.evaluation import metrics

    print(f"[drift slowdown={slowdown}] newest PSI per feature: " + ", ".join(
        f"{s.labels['feature']}={s.value:.3f}" for m in metrics.PSI.collect() for s in m.samples))
    if slowdown:
        assert {a.feature for a in alerts} == {"duration_s"}  # slower traffic moves the target only
        assert all(a.window_start == T0 + DAY for a in alerts) and all(a.psi > 0.25 for a in alerts)
    else:
        assert alerts == []


def test_a_reference_without_known_features_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "reference.json").write_text(json.dumps({"colour": {"kind": "categorical", "values": ["red"],
                                                                    "fractions": [1.0]}}))
    result = subprocess.run([sys.executable, "-m", "edml.cli", "evaluate", "--reference",
                             str(tmp_path / "reference.json"), "--metrics-port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no known feature" in result.stderr


def test_the_drift_check_follows_a_promoted_champion(settings: Settings, trained_model_dir: Path,
                                                     trained_model_dir_v2: Path) -> None:
    from edml.evaluation.champion_reference import ChampionFollower, champion_reference
    from edml.evaluation.drift import References
    from edml.model_topic.publisher import publish_model

    from edml.pipelines.bound import open_pipeline

    known = drift_features(open_pipeline("taxi", settings)).names
    publish_model(settings, trained_model_dir, "trip-duration", version="v1", force=True)
    first = champion_reference(settings, known)
    assert first is not None and first.source == "trip-duration v1" and "duration_s" in first.features
    references = References(first)
    follower = ChampionFollower(settings, references, known)
    assert not follower.check()  # still v1
    publish_model(settings, trained_model_dir_v2, "trip-duration", version="v2", force=True)
    assert follower.check() and references.current.source == "trip-duration v2"
    assert references.current.features["duration_s"] != first.features["duration_s"]  # v2's own distributions
    assert references.get("trip-duration v1") == first  # windows opened under v1 still compare with it
    assert not follower.check()
