"""Soak: ``edml serve`` for a long time at a steady rate with a model swap every few minutes.

    make soak                           # 30 minutes
    SOAK_MINUTES=5 make soak            # shorter
    python -m bench.soak --minutes 5 --rate 200 --swap-minutes 1

On its own broker (under bench/work/soak), with two small trained models published in turn.
The scorer's own Prometheus metrics are sampled (``process_resident_memory_bytes``,
``process_open_fds``, events in, predictions out); at the end every trip sent must have a
prediction. The report (bench/work/soak/report.json and the printed summary) gives sent,
predicted, duplicated, dead-lettered and lost, the swaps, and RSS and open files over time:
after a warm-up they must stay flat. Exit code 1 when anything was lost or RSS or open
files grew.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import REPO, WORK, TripProducer, edml_env, message_count, python, start_broker, terminate_group
from bench.report import git_sha, machine
from edml.core.config import Settings, Topics
from edml.kafka.local_broker import free_port
from edml.kafka.reading import read_to_end
from edml.kafka.topics import create_topics

SOAK_DIR = WORK / "soak"
RESULTS = REPO / "bench" / "results"
MiB = 1024 * 1024
CHUNK = 2000  # trips generated and produced at a time
# what "flat" allows after the warm-up
MAX_RSS_GROWTH_MB = 64.0
MAX_RSS_GROWTH_SHARE = 0.10
MAX_FD_GROWTH = 8


@dataclass
class Sample:
    """One reading of the scorer's metrics."""

    t_s: float
    rss_mb: float
    open_fds: int
    events_in: int
    predictions_out: int
    dead_letters: int
    active_version: str


@dataclass
class Report:
    """What the soak sent, what came out, and how the process's resources moved."""

    minutes: float
    rate: float
    swap_minutes: float
    sent: int = 0
    predictions: int = 0
    unique_predicted: int = 0
    duplicated: int = 0
    dead_letters: int = 0
    lost: int = 0
    swaps: list[str] = field(default_factory=list)
    versions_seen: dict[str, int] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    scorer_restarts: int = 0
    warmup_s: float = 0.0
    rss_mb: dict[str, float] = field(default_factory=dict)
    open_fds: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    verdict: str = ""
    problems: list[str] = field(default_factory=list)


def metric(text: str, name: str, label: str | None = None) -> float:
    """Sum of ``name``'s samples in Prometheus text (only those whose labels contain ``label``)."""
    total = 0.0
    for line in text.splitlines():
        if (line.startswith(name + " ") or line.startswith(name + "{")) and (label is None or label in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def active_version(text: str) -> str:
    """The champion version ``edml_active_model_info`` shows, or "-"."""
    for line in text.splitlines():
        if line.startswith("edml_active_model_info{") and 'role="champion"' in line and line.endswith(" 1.0"):
            return line.split('version="', 1)[1].split('"', 1)[0]
    return "-"


class Scorer:
    """``edml serve`` as a child process with its metrics port."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [python(), "-m", "edml.cli", "serve", "--metrics-port", str(self.port)],
            env=edml_env(settings), stdout=log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def metrics(self) -> str | None:
        """The Prometheus text, or None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None

    def wait_ready(self, timeout: float = 300) -> None:
        """Until /healthz says a model serves."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"edml serve exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"edml serve not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 60 s."""
        terminate_group(self.proc)


def train_models(folder: Path) -> list[Path]:
    """Two small wide & deep models with different seeds (their predictions differ)."""
    from edml.trainer.train import train_small

    return [train_small(folder / f"model-{seed}", seed=seed, n=8000, epochs=2).out_dir for seed in (1, 2)]


def produce(settings: Settings, rate: float, until: float, sent: list[str], stop: threading.Event) -> None:
    """Trips at ``rate`` a second until the monotonic time ``until``; their ids go to ``sent``."""
    from edml.trainer.generator import generate_trips
    from edml.trainer.records import trip_serde

    serde = trip_serde()
    producer = TripProducer(settings)
    chunk = 0
    while time.monotonic() < until and not stop.is_set():
        n = max(1, min(CHUNK, int((until - time.monotonic()) * rate)))
        trips = [t.pickup for t in generate_trips(n, seed=10_000 + chunk)]
        # generated ids repeat across seeds only by chance; make them unique per run anyway
        messages = []
        for t in trips:
            t.trip_id = f"{chunk}-{t.trip_id}"
            messages.append((t.trip_id.encode(), serde.encode(t)))
        producer.send(settings.topics.trips, messages, rate)
        sent.extend(t.trip_id for t in trips)
        chunk += 1


def summarise(report: Report) -> None:
    """Fill the RSS and open-file figures and the verdict from the samples."""
    samples = [s for s in report.samples if s.t_s >= report.warmup_s and s.rss_mb > 0]
    problems = report.problems
    if report.lost:
        problems.append(f"{report.lost} trips without a prediction")
    if report.rejected:
        problems.append(f"rejected versions: {report.rejected}")
    if len(samples) >= 4:
        tenth = max(1, len(samples) // 10)
        first = statistics.median(s.rss_mb for s in samples[:tenth])
        last = statistics.median(s.rss_mb for s in samples[-tenth:])
        slope = _slope([(s.t_s / 3600, s.rss_mb) for s in samples])
        report.rss_mb = {"after_warmup": round(first, 1), "end": round(last, 1), "growth": round(last - first, 1),
                         "max": round(max(s.rss_mb for s in samples), 1), "slope_mb_per_hour": round(slope, 1)}
        fds = [s.open_fds for s in samples]
        report.open_fds = {"after_warmup": fds[0], "end": fds[-1], "min": min(fds), "max": max(fds)}
        if last - first > max(MAX_RSS_GROWTH_MB, MAX_RSS_GROWTH_SHARE * first):
            problems.append(f"RSS grew {last - first:.0f} MB after the warm-up ({first:.0f} -> {last:.0f})")
        if max(fds) - fds[0] > MAX_FD_GROWTH:
            problems.append(f"open files grew from {fds[0]} to {max(fds)}")
    else:
        problems.append("too few samples after the warm-up to judge RSS and open files")
    report.verdict = "FAIL" if problems else "PASS"


def _slope(points: list[tuple[float, float]]) -> float:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def report_text(report: Report) -> str:
    """The summary: figures first, then a sample every few minutes."""
    lines = [
        f"soak: {report.minutes:g} min at {report.rate:g} trips/s, a swap every {report.swap_minutes:g} min "
        f"-> {report.verdict}",
        f"  sent={report.sent} predictions={report.predictions} unique={report.unique_predicted} "
        f"duplicated={report.duplicated} dead_letters={report.dead_letters} lost={report.lost}",
        f"  swaps={len(report.swaps)} ({', '.join(report.swaps)}); predictions per version {report.versions_seen}; "
        f"rejected={report.rejected or 'none'}; scorer restarts={report.scorer_restarts}",
        f"  RSS MB (after a {report.warmup_s:.0f}s warm-up): {report.rss_mb}",
        f"  open fds: {report.open_fds}",
        "  t_s     rss_mb  fds  events_in  predictions  version",
    ]
    step = max(1, len(report.samples) // 20)
    for s in report.samples[::step] + report.samples[-1:]:
        lines.append(f"  {s.t_s:6.0f} {s.rss_mb:8.1f} {s.open_fds:4d} {s.events_in:10d} {s.predictions_out:12d}  "
                     f"{s.active_version}")
    lines += [f"  problem: {p}" for p in report.problems]
    return "\n".join(lines)


def soak(minutes: float, rate: float, swap_minutes: float, sample_s: float) -> Report:
    """Run the soak; returns its report."""
    from edml.model_topic.publisher import publish_model

    shutil.rmtree(SOAK_DIR, ignore_errors=True)
    SOAK_DIR.mkdir(parents=True)
    report = Report(minutes=minutes, rate=rate, swap_minutes=swap_minutes)
    print(f"soak: training two small models, starting a broker under {SOAK_DIR}", flush=True)
    models = train_models(SOAK_DIR / "models")
    broker = start_broker(SOAK_DIR / "kafka")
    scorer: Scorer | None = None
    stop = threading.Event()
    try:
        settings = Settings(bootstrap_servers=broker.bootstrap_servers, partitions=2, state_dir=SOAK_DIR / "state",
                            topics=Topics().with_prefix(f"soak{uuid.uuid4().hex[:6]}-"))
        create_topics(settings)
        version = 1
        publish_model(settings, models[0], settings.model_name, version=f"soak-{version:03d}", force=True)
        report.swaps.append(f"soak-{version:03d}")
        scorer = Scorer(settings, SOAK_DIR / "serve.log")
        scorer.wait_ready()
        print(f"soak: scorer ready; producing {rate:g} trips/s for {minutes:g} min", flush=True)
        started = time.monotonic()
        end = started + minutes * 60
        sent: list[str] = []
        producer = threading.Thread(target=produce, args=(settings, rate, end, sent, stop), daemon=True)
        producer.start()
        next_swap = started + swap_minutes * 60
        # warm-up: the first swap has happened and the model has served for a while after it
        report.warmup_s = min(minutes * 60 * 0.25, swap_minutes * 60 * 1.5)
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_swap:
                version += 1
                name = f"soak-{version:03d}"
                publish_model(settings, models[(version - 1) % 2], settings.model_name, version=name, force=True)
                report.swaps.append(name)
                print(f"soak: {now - started:6.0f}s published {name}", flush=True)
                next_swap += swap_minutes * 60
            text = scorer.metrics()
            if scorer.proc.poll() is not None:
                report.problems.append(f"the scorer exited with {scorer.proc.returncode} at {now - started:.0f}s")
                report.scorer_restarts += 1
                scorer = Scorer(settings, SOAK_DIR / "serve.log")
                scorer.wait_ready()
            elif text is not None:
                s = Sample(t_s=round(now - started, 1), rss_mb=metric(text, "process_resident_memory_bytes") / MiB,
                           open_fds=int(metric(text, "process_open_fds")),
                           events_in=int(metric(text, "edml_events_in_total")),
                           predictions_out=int(metric(text, "edml_predictions_out_total", 'role="champion"')),
                           dead_letters=int(metric(text, "edml_dead_letters_total")),
                           active_version=active_version(text))
                report.samples.append(s)
                if len(report.samples) % max(1, int(60 / sample_s)) == 0:
                    print(f"soak: {s.t_s:6.0f}s rss={s.rss_mb:.1f}MB fds={s.open_fds} events={s.events_in} "
                          f"predictions={s.predictions_out} version={s.active_version}", flush=True)
            time.sleep(min(sample_s, max(0.0, min(end, next_swap) - time.monotonic())))
        producer.join()
        report.sent = len(sent)
        print(f"soak: {report.sent} trips sent; waiting for their predictions", flush=True)
        deadline = time.monotonic() + 300
        while message_count(settings, settings.topics.predictions) < report.sent and time.monotonic() < deadline:
            time.sleep(2)
        scorer.stop()
        _count_outputs(settings, report, set(sent))
    finally:
        stop.set()
        if scorer is not None:
            scorer.stop()
        broker.down()
    summarise(report)
    return report


def _count_outputs(settings: Settings, report: Report, sent: set[str]) -> None:
    from edml.schemas.serde import model_status_serde, prediction_serde

    serde = prediction_serde()
    seen: dict[str, int] = {}
    for m in read_to_end(settings, settings.topics.predictions, timeout=300):
        p = serde.decode(m.value)
        seen[p.trip_id] = seen.get(p.trip_id, 0) + 1
        report.versions_seen[p.model_version] = report.versions_seen.get(p.model_version, 0) + 1
    report.predictions = sum(seen.values())
    report.unique_predicted = len(seen)
    report.duplicated = report.predictions - report.unique_predicted
    report.lost = len(sent - set(seen))
    report.dead_letters = len(read_to_end(settings, settings.topics.dead_letter))
    statuses = [model_status_serde().decode(m.value) for m in read_to_end(settings, settings.topics.model_status)]
    report.rejected = sorted({s.version for s in statuses if s.status == "rejected"})


def main() -> None:
    """``make soak``: the minutes, rate and swap period come from flags or SOAK_* variables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", 200)),
                        help="trips a second")
    parser.add_argument("--swap-minutes", type=float, default=float(os.environ.get("SOAK_SWAP_MINUTES", 3)))
    parser.add_argument("--sample-seconds", type=float, default=float(os.environ.get("SOAK_SAMPLE_SECONDS", 10)))
    args = parser.parse_args()
    report = soak(args.minutes, args.rate, args.swap_minutes, args.sample_seconds)
    text = report_text(report)
    print("\n" + text)
    # the figures are kept beside the benchmark results; the scorer log stays under bench/work
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak-latest.json").write_text(json.dumps(asdict(report), indent=1))
    m = machine()
    (RESULTS / "soak-latest.md").write_text(
        f"# Soak\n\nCommit {git_sha()} on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; one local Kafka "
        f"broker on the same machine.\n\n```\n{text}\n```\n")
    print(f"report: {RESULTS / 'soak-latest.md'}; scorer log: {SOAK_DIR / 'serve.log'}")
    sys.exit(0 if report.verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
