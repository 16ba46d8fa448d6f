"""The end-to-end demo: train, publish, serve, stream trips, swap models, evaluate.

Every run gets its own topics (prefix ``demo-<run>-``) and state folder, so running it twice
works and each run shows the whole story from an empty model topic.
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from edml.core.config import Settings, redact_url
from edml.core.errors import Refusal
from edml.kafka.clients import make_consumer, make_producer
from edml.kafka.local_broker import free_port
from edml.kafka.topics import create_topics
from edml.schemas.records import Prediction
from edml.schemas.wire import topic_serdes
from edml.trainer.records import trip_serde

console = Console()


@dataclass
class LivePredictions:
    """Predictions read from the predictions topic as they arrive."""

    settings: Settings
    actual: dict[str, float]
    seen: dict[str, Prediction] = field(default_factory=dict)
    repeats: int = 0
    recent: list[Prediction] = field(default_factory=list)
    first_seen_ms: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    # the follower thread adds predictions while the demo's thread reads them
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Follow the topic in a background thread."""
        threading.Thread(target=self._follow, daemon=True).start()

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()

    def _follow(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        consumer = make_consumer(self.settings, enable_partition_eof=False)
        topic = self.settings.topics.predictions
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        serde = topic_serdes(self.settings).predictions
        while not self._stop.is_set():
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            p = serde.decode(msg.value())
            with self._lock:
                if p.model_version not in self.first_seen_ms:
                    self.first_seen_ms[p.model_version] = msg.timestamp()[1]
                if p.trip_id in self.seen:
                    self.repeats += 1
                self.seen[p.trip_id] = p
                self.recent = (self.recent + [p])[-8:]
        consumer.close()

    def predictions(self) -> list[Prediction]:
        """The latest prediction of every trip seen so far (a copy)."""
        with self._lock:
            return list(self.seen.values())

    def table(self, sent: int) -> Table:
        """The latest predictions beside the actual durations."""
        seen = self.predictions()
        by_version = Counter(p.model_version for p in seen)
        t = Table(title=f"trips sent {sent}  predictions {len(seen)}  by version "
                        + ", ".join(f"{v}: {n}" for v, n in sorted(by_version.items())))
        for col in ("trip", "predicted (s)", "actual (s)", "error (s)"):
            t.add_column(col, justify="right" if col != "trip" else "left")
        add_version_column(t, self.recent)
        t.add_column("latency (ms)", justify="right")
        for p in reversed(self.recent):
            actual = self.actual.get(p.trip_id, float("nan"))
            t.add_row(p.trip_id[:8], f"{p.predicted_duration_s:7.0f}", f"{actual:7.0f}",
                      f"{p.predicted_duration_s - actual:+7.0f}", p.model_version, f"{p.latency_ms:5.0f}")
        return t


def add_version_column(table: Table, predictions: list[Prediction] | list[str]) -> None:
    """A "version" column as wide as the longest version: v1 and v2 differ only near their end,
    and a cut version makes them look the same."""
    versions = [p if isinstance(p, str) else p.model_version for p in predictions]
    table.add_column("version", no_wrap=True, min_width=max(map(len, versions), default=7))


def _step(text: str) -> None:
    console.rule(f"[bold]{text}")


def _train(out: Path, n: int, epochs: int, seed: int) -> Path:
    from edml.trainer.demo_story import train_demo_model

    model = train_demo_model(out, n, epochs, seed)
    console.print(model.report)
    return model.folder


def _publish(settings: Settings, model_dir: Path, name: str, shadow: str | None = None) -> str:
    """Gate, upload and publish; with ``shadow``, that older version keeps scoring as a challenger."""
    from edml.model_topic.publisher import publish_model, publish_record

    record = publish_model(settings, model_dir, name)
    console.print(f"published [bold]{record.version}[/] -> {record.artifact_uri} (sha256 {record.sha256[:12]}...)")
    if shadow:
        publish_record(settings, dataclasses.replace(record, challengers=[shadow]))
        console.print(f"  with {shadow} as a shadow challenger (its predictions go to the shadow topic only)")
    return record.version


def run_demo(base: Settings, trips_per_phase: int = 4000, rate: float = 250.0) -> None:
    """The whole story on the local broker; prints a summary at the end."""
    from edml.trainer.demo_story import actual_durations, demo_phase
    from edml.trainer.producing import produce_live

    run = time.strftime("%Y%m%d-%H%M%S")
    root = base.state_dir / "demo" / run
    settings = dataclasses.replace(base, topics=base.topics.with_prefix(f"demo-{run}-"), state_dir=root / "state",
                                   artifact_store=f"file://{(root / 'artifacts').resolve()}")
    _step(f"1. Kafka at {settings.bootstrap_servers}: topics for this run")
    for topic, state in create_topics(settings).items():
        console.print(f"  {state:8} {topic}")
    # children read the registry settings from the same edml.toml and EDML_SCHEMA_REGISTRY_* as this process
    registry = redact_url(settings.schema_registry_url)
    console.print(f"values: Confluent wire format, schemas in the registry at {registry}" if registry
                  else "values: Avro single-object encoding (no schema registry)")

    _step("2. Train v1 (wide & deep, SavedModel on raw trip fields)")
    v1_dir = _train(root / "model-v1", 20_000, 2, 1)
    _step("3. Publish v1: artifact to the store, then its record onto the compacted model topic")
    v1 = _publish(settings, v1_dir, settings.model_name)

    _step("4. edml serve (Bytewax scoring dataflow)")
    metrics_port = free_port()
    log_path = root / "serve.log"
    env = {**__import__("os").environ, "EDML_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "EDML_TOPIC_PREFIX": f"demo-{run}-", "EDML_STATE_DIR": str(settings.state_dir),
           "EDML_ARTIFACT_STORE": settings.artifact_store, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log_path, "wb") as log:
        serve = subprocess.Popen([sys.executable, "-m", "edml.cli", "serve", "--metrics-port", str(metrics_port)],
                                 env=env, stdout=log, stderr=subprocess.STDOUT)
    console.print(f"scorer pid {serve.pid}, log {log_path}, metrics http://127.0.0.1:{metrics_port}/metrics")
    try:
        _wait_healthy(metrics_port, serve)
        phase1, phase2 = demo_phase(trips_per_phase, 1), demo_phase(trips_per_phase, 2)
        actual = actual_durations(phase1 + phase2)
        live = LivePredictions(settings, actual)
        live.start()

        _step(f"5. Stream {trips_per_phase:,} trips at {rate:.0f}/s (drop-offs follow in compressed time)")
        sent = _stream(settings, phase1, rate, live)

        _step("6. Train v2 on more data while v1 serves, publish it")
        v2_dir = _train(root / "model-v2", 60_000, 5, 2)
        _step("7. Stream again: the scorer swaps to v2 without a restart")
        stream_thread = threading.Thread(target=produce_live, args=(settings, phase2, rate))
        stream_thread.start()
        time.sleep(2)
        published_at = time.time()
        v2 = _publish(settings, v2_dir, settings.model_name, shadow=v1)
        with Live(live.table(sent), console=console, refresh_per_second=4) as view:
            while stream_thread.is_alive():
                view.update(live.table(sent + _count(live, phase2)))
                time.sleep(0.25)
        sent += len(phase2)
        _wait_for(lambda: len(live.seen) >= sent, 60)
        first_v2 = live.first_seen_ms.get(v2)
        if first_v2:
            console.print(f"first {v2} prediction {first_v2 / 1000 - published_at:.2f}s after publish returned")

        _step("8. Malformed events go to the dead-letter topic with a reason")
        _dead_letters(settings)
        live.stop()
        _summary(live, sent, v1, v2)

        _step("9. Live evaluation: predictions joined with drop-offs, error per model version")
        _evaluate(settings, env, root)

        from edml.cli.autopilot_demo import run_autopilot_act

        _step("10. Autopilot: traffic slows; drift alert, retraining, shadow and promotion with no command typed")
        run_autopilot_act(settings, env, root, trips_per_phase, rate)
    finally:
        serve.terminate()
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
    _step(f"done: the scorer stopped cleanly; state in {root}")


def _count(live: LivePredictions, trips: list) -> int:
    from edml.trainer.demo_story import trip_ids

    ids = trip_ids(trips)
    return sum(1 for p in live.predictions() if p.trip_id in ids)


def _stream(settings: Settings, trips: list, rate: float, live: LivePredictions) -> int:
    from edml.trainer.producing import produce_live

    thread = threading.Thread(target=produce_live, args=(settings, trips, rate))
    thread.start()
    with Live(live.table(0), console=console, refresh_per_second=4) as view:
        while thread.is_alive() or len(live.seen) < len(trips):
            view.update(live.table(len(trips)))
            time.sleep(0.25)
            if not thread.is_alive() and len(live.seen) < len(trips):
                _wait_for(lambda: len(live.seen) >= len(trips), 30)
        view.update(live.table(len(trips)))
    return len(trips)


def _wait_healthy(port: int, serve: subprocess.Popen) -> None:
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise Refusal(f"edml serve exited with {serve.returncode}; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    console.print("scorer healthy: model topic read to its end, v1 active")
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise Refusal("edml serve did not become healthy in 120 s")


def _wait_for(condition, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.25)


def _dead_letters(settings: Settings) -> None:
    from edml.kafka.reading import wait_for_count
    from edml.trainer.demo_story import malformed_trips

    bad = malformed_trips(topic_serdes(settings).for_serde(settings.topics.trips, trip_serde()))
    producer = make_producer(settings)
    for key, value in bad.items():
        producer.produce(settings.topics.trips, key=key, value=value)
    producer.flush(10)
    letters = [topic_serdes(settings).dead_letter.decode(m.value)
               for m in wait_for_count(settings, settings.topics.dead_letter, len(bad), 30)]
    for d in letters:
        console.print(f"  {d.source_topic}[{d.partition}]@{d.offset} {d.error_kind}: {d.message}")


def _summary(live: LivePredictions, sent: int, v1: str, v2: str) -> None:
    preds = live.predictions()
    missing = sent - len(preds)
    console.print(summary_table(live, v1, v2))
    console.print(f"trips sent {sent}, predicted {len(preds)}, without prediction {missing}, "
                  f"re-emitted {live.repeats}")


def summary_table(live: LivePredictions, v1: str, v2: str) -> Table:
    """Predictions, error and latency of each version."""
    preds = live.predictions()
    t = Table(title="summary")
    add_version_column(t, [v1, v2])
    for col in ("predictions", "MAE (s)", "latency p50 (ms)", "latency p99 (ms)"):
        t.add_column(col, justify="right")
    for version in (v1, v2):
        mine = [p for p in preds if p.model_version == version]
        if not mine:
            continue
        errors = [abs(p.predicted_duration_s - live.actual[p.trip_id]) for p in mine if p.trip_id in live.actual]
        lat = sorted(p.latency_ms for p in mine)
        t.add_row(version, str(len(mine)), f"{statistics.mean(errors):.0f}" if errors else "-",
                  f"{lat[len(lat) // 2]:.0f}", f"{lat[int(len(lat) * 0.99) - 1]:.0f}")
    return t


def _evaluate(settings: Settings, env: dict[str, str], root: Path) -> None:
    with open(root / "evaluate.log", "wb") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "edml.cli", "evaluate", "--stop-at-end", "--window", "1h", "--lateness", "0s",
             "--no-drift", "--metrics-port", "0"],
            env=env, stdout=log, stderr=subprocess.STDOUT, timeout=240,
        )
    if proc.returncode != 0:
        console.print(f"edml evaluate exited with {proc.returncode}; see {root / 'evaluate.log'}")
        return
    subprocess.run([sys.executable, "-m", "edml.cli", "scores", "--last", "16"], env=env, timeout=60)
