"""``make bench``: every pipeline over the same trips on one dedicated local broker, back to back.

Order: a broker; models v1 and v2 (trained once, cached in bench/work/models); N trips generated
and produced once onto a shared trips topic (a smaller topic holds the first trips for the
one-call-per-event pipelines); then each variant reads that topic from the beginning into its own
output topic: the ceiling (1, 2 processes), edml serve (1, 2 processes), the taxi pipeline with two
routes and an ensemble (``bench.routed``, the same trips on its own input topic, 1, 2 processes),
inline (one model call per trip), the Quix Streams peer, the replay of an archive of the same trips;
then latency at two offered rates and a model swap under load. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import latency, report, routed, swap
from bench.common import (
    MODEL_THREADS_ENV,
    REPO,
    WORK,
    TripProducer,
    produce_encoded,
    start_broker,
    variant_settings,
    wait_for_messages,
)
from bench.pipelines import PEER_VENV, RunFigures, Scorer, peer_available, run_ceiling, run_peer, run_serve
from edml.core.config import Settings

log = logging.getLogger("edml.bench")
MODEL_NAME = "trip-duration"
MAX_LATENCY_TRIPS = 300_000  # a latency phase at a high rate is shorter than latency_seconds


@dataclass(frozen=True)
class Plan:
    """How big a run is."""

    mode: str
    fast_trips: int  # for the ceiling, edml and replay
    slow_trips: int  # for inline and the peer (one model call per trip)
    processes: tuple[int, ...]
    ceiling_io: tuple[str, ...]
    peer: bool
    replay: bool
    latency_seconds: float
    half_max_latency: bool
    swap_seconds: float
    profile: bool
    rounds: int
    batch_size: int = 1000


FULL = Plan("full", fast_trips=500_000, slow_trips=10_000, processes=(1, 2), ceiling_io=("edml", "bytewax"),
            peer=True, replay=True, latency_seconds=10.0, half_max_latency=True, swap_seconds=8.0, profile=True,
            rounds=2)
QUICK = Plan("quick", fast_trips=60_000, slow_trips=2_000, processes=(1,), ceiling_io=("edml",), peer=False,
             replay=False, latency_seconds=4.0, half_max_latency=False, swap_seconds=6.0, profile=False, rounds=1)


def ensure_models(work: Path) -> tuple[Path, Path]:
    """Models v1 and v2 (the project's small wide & deep, seeds 1 and 2), trained once and cached."""
    out = []
    for version, seed in (("v1", 1), ("v2", 2)):
        folder = work / "models" / version
        if not (folder / "saved_model" / "saved_model.pb").exists():
            from edml.trainer.train import train_small

            log.info("training %s (seed %d) into %s", version, seed, folder)
            shutil.rmtree(folder, ignore_errors=True)
            train_small(folder, seed=seed)
        out.append(folder)
    return out[0], out[1]


def ensure_peer_venv() -> bool:
    """The peer's venv with bench/peer-requirements.txt; False (and a note) when it cannot be built."""
    if peer_available():
        return True
    log.info("installing the peer's venv into %s", PEER_VENV)
    try:
        subprocess.run(["python3.11", "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", "-r",
                        str(REPO / "bench" / "peer-requirements.txt")], check=True)
        return True
    except (OSError, subprocess.CalledProcessError) as e:
        log.warning("no peer venv: %s", e)
        shutil.rmtree(PEER_VENV, ignore_errors=True)
        return False


def encoded_trips(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    """``n`` generated trips as (key, Avro single-object value)."""
    from edml.trainer.generator import generate_trips
    from edml.trainer.records import trip_serde

    serde = trip_serde()
    return [(t.pickup.trip_id.encode(), serde.encode(t.pickup)) for t in generate_trips(n, seed=seed)]


def _throughput_row(label: str, f: RunFigures) -> dict[str, Any]:
    log.info(f"{label}, {f.processes} process(es): {f.events_per_s:,.0f} events/s ({f.outputs} outputs, "
             f"peak RSS {f.peak_rss_mb:.0f} MB)")
    return {"label": label, **asdict(f)}


def run(plan: Plan, out_dir: Path) -> dict[str, Any]:
    """Run the plan; returns the results written to ``out_dir``."""
    started = datetime.now(UTC)
    t_start = time.monotonic()
    run_dir = WORK / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    logs = run_dir / "logs"
    load_start = list(report.machine()["load_average"])
    v1_dir, v2_dir = ensure_models(WORK)
    peer = plan.peer and ensure_peer_venv()
    notes: list[str] = []
    if plan.peer and not peer:
        notes.append("the peer's venv could not be installed: no peer figures")

    broker = start_broker(run_dir / "broker")
    try:
        base = Settings(bootstrap_servers=broker.bootstrap_servers, partitions=2, state_dir=run_dir / "state",
                        artifact_store=f"file://{run_dir / 'artifacts'}")
        results = _run_variants(plan, base, v1_dir, v2_dir, peer, logs, notes)
    finally:
        broker.down()
    results.update({
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "mode": plan.mode, "commit": report.git_sha(),
        "seconds": time.monotonic() - t_start, "machine": report.machine(), "load_average_start": load_start,
        "plan": asdict(plan), "notes": notes, "model_threads_env": MODEL_THREADS_ENV,
    })
    results["targets"] = targets(results)
    report.write(results, out_dir)
    return results


def _run_variants(plan: Plan, base: Settings, v1_dir: Path, v2_dir: Path, peer: bool, logs: Path,
                  notes: list[str]) -> dict[str, Any]:
    from edml.model_topic.publisher import publish_model, publish_record

    fast_topic, slow_topic = "bench-trips", "bench-trips-slow"
    trips = encoded_trips(plan.fast_trips, seed=7)
    shared = variant_settings(base, "shared", fast_topic)
    variant_settings(base, "shared-slow", slow_topic)
    log.info("producing %d trips onto %s and %d onto %s", len(trips), fast_topic, plan.slow_trips, slow_topic)
    produce_encoded(shared, fast_topic, trips)
    produce_encoded(shared, slow_topic, trips[: plan.slow_trips])
    v1 = publish_model(shared, v1_dir, MODEL_NAME, version="v1", force=True)

    def settings_for(name: str, trips_topic: str = fast_topic, append_time: bool = True) -> Settings:
        return variant_settings(base, name, trips_topic, append_time=append_time)

    def publisher(s: Settings):  # noqa: ANN202
        return lambda: publish_record(s, v1)

    routed_models = routed.ensure_models(WORK, v1_dir)
    # Rounds: the ceiling, edml and the routed taxi pipeline alternate, each configuration runs
    # plan.rounds times and its best run counts (the run least disturbed by whatever else the
    # machine does); every run's figure is kept in the results.
    runs: dict[tuple[str, int], list[RunFigures]] = {}
    for r in range(plan.rounds):
        for p in plan.processes:
            for io in plan.ceiling_io:
                log.info("round %d: ceiling (%s I/O), %d process(es)", r + 1, io, p)
                s = variant_settings(base, f"ceiling-{io}-p{p}-r{r}", fast_topic, append_time=True)
                f = run_ceiling(s, io, p, len(trips), logs, batch_size=plan.batch_size)
                runs.setdefault((f"ceiling ({io} I/O)", p), []).append(f)
                _throughput_row(f"ceiling ({io} I/O)", f)
            log.info("round %d: edml serve, %d process(es), batch %d", r + 1, p, plan.batch_size)
            s = settings_for(f"edml-p{p}-r{r}")
            f = run_serve(s, "edml", p, len(trips), logs, publisher(s), batch_size=plan.batch_size)
            runs.setdefault(("edml serve", p), []).append(f)
            _throughput_row("edml serve", f)
            log.info("round %d: %s, %d process(es)", r + 1, routed.LABEL, p)
            f = routed.run_routed(base, f"routed-p{p}-r{r}", trips, routed_models, p, plan.batch_size, logs)
            runs.setdefault((routed.LABEL, p), []).append(f)
            _throughput_row(routed.LABEL, f)
    rows: list[dict[str, Any]] = []
    ceiling: dict[int, float] = {}  # the faster passthrough per process count: the strict ceiling
    connectors: dict[int, float] = {}  # the passthrough on Bytewax's own Kafka connectors
    edml: dict[int, float] = {}
    for (label, p), figures in sorted(runs.items(), key=lambda kv: (not kv[0][0].startswith("ceiling"), kv[0][1])):
        best = max(figures, key=lambda f: f.events_per_s)
        rows.append({"label": label, **asdict(best), "rounds": [round(f.events_per_s) for f in figures]})
        if label.startswith("ceiling"):
            ceiling[p] = max(ceiling.get(p, 0.0), best.events_per_s)
            if "bytewax" in label:
                connectors[p] = best.events_per_s
        elif label == "edml serve":
            edml[p] = best.events_per_s
    log.info("inline: one model call per trip")
    # batches of 100: the model is called per trip anyway; smaller batches spread the outputs'
    # timestamps so that the steady-state rate can be measured over 10k trips
    s = settings_for("inline", slow_topic)
    f = run_serve(s, "inline", 1, plan.slow_trips, logs, publisher(s), batch_size=100, per_event=True)
    rows.append(_throughput_row("inline (model call per trip)", f))
    peer_rate = None
    if peer:
        from edml.schemas.serde import prediction_serde

        log.info("peer: Quix Streams")
        s = variant_settings(base, "peer", slow_topic, append_time=True)
        header = b"\xc3\x01" + prediction_serde().fingerprint
        f = run_peer(s, v1_dir / "saved_model", header, plan.slow_trips, logs)
        rows.append(_throughput_row("peer: Quix Streams (model call per message)", f))
        peer_rate = f.events_per_s
    replay_row = _replay(plan, shared, v1_dir) if plan.replay else None
    if replay_row:
        rows.append(replay_row)
    for row in rows:
        c = ceiling.get(row["processes"])
        kafka_to_kafka = not row["label"].startswith(("ceiling", "edml replay"))
        row["vs_ceiling"] = row["events_per_s"] / c if c and kafka_to_kafka else None
        c = connectors.get(row["processes"])
        row["vs_bytewax_connectors"] = row["events_per_s"] / c if c and kafka_to_kafka else None
        row["vs_peer"] = row["events_per_s"] / peer_rate if peer_rate else None
        if row["label"] == routed.LABEL:  # the routed taxi pipeline beside the single model, same processes
            single = edml.get(row["processes"])
            row["vs_single_model"] = row["events_per_s"] / single if single else None

    best_p = max(edml, key=edml.get)
    lat_rows = _latency(plan, base, settings_for, v1, best_p, edml[best_p], logs)
    swap_figures, swap_rss = _swap(plan, base, v1, v2_dir, best_p, logs)
    profile = None
    if plan.profile:
        from bench.profile import summarise

        log.info("profile: edml serve, 1 process, under py-spy (not a measured run)")
        stacks = logs.parent / "profile-edml-p1.txt"
        s = settings_for("edml-profiled")
        f = run_serve(s, "edml-profiled", 1, len(trips), logs, publisher(s), batch_size=plan.batch_size,
                      profile=stacks)
        profile = {"events_per_s_under_py_spy": f.events_per_s, **summarise(stacks)} if stacks.exists() else None
    return {"profile": profile, "throughput": rows, "ceiling": ceiling, "bytewax_connectors": connectors, "edml": edml,
            "best_processes": best_p,
            "peer": peer_rate,
            "latency": [asdict(x) for x in lat_rows[0]], "latency_peak_rss_mb": lat_rows[1],
            "swap": asdict(swap_figures), "swap_peak_rss_mb": swap_rss}


def _replay(plan: Plan, shared: Settings, v1_dir: Path) -> dict[str, Any]:
    """Record the trips topic into an archive, replay it through v1 (``edml replay``'s engine)."""
    from edml.replay.models import load_folder
    from edml.replay.recorder import record_topics
    from edml.replay.run import replay_archive

    archive = shared.state_dir / "archive"
    log.info("replay: recording %s into %s", shared.topics.trips, archive)
    record_topics(shared, archive, ["trips"], stop_at_end=True)
    with tempfile.TemporaryDirectory(prefix="edml-bench-replay-") as work:
        model = load_folder(v1_dir, MODEL_NAME, "v1", Path(work))
        result = replay_archive(archive, model, shared.state_dir / "replay-out")
    return {"label": "edml replay (archive -> file)", "variant": "replay", "processes": 1, "events": result.events,
            "outputs": result.predictions, "events_per_s": result.events_per_s, "steady_seconds": result.seconds,
            "peak_rss_mb": None, "wall_seconds": result.seconds}


def _latency(plan: Plan, base: Settings, settings_for, v1, processes: int, max_rate: float,  # noqa: ANN001
             logs: Path) -> tuple[list[latency.LatencyFigures], float]:
    from edml.model_topic.publisher import publish_record

    s = settings_for("latency", "bench-latency-trips", append_time=False)
    publish_record(s, v1)
    rates = [5000.0] + ([round(max_rate / 2, -2)] if plan.half_max_latency else [])
    scorer = Scorer(s, processes, plan.batch_size, logs / "latency-serve.log")
    out = []
    try:
        scorer.wait_healthy()
        # warm-up: the first batches pay for the model's first calls and the fetch ramp-up
        producer = TripProducer(s)  # connected by the warm-up, reused: see TripProducer
        warm = encoded_trips(2000, seed=50)
        producer.send(s.topics.trips, warm)
        wait_for_messages(s, s.topics.predictions, len(warm), timeout=120)
        seen = len(warm)
        for i, rate in enumerate(rates):
            n = min(int(rate * plan.latency_seconds), MAX_LATENCY_TRIPS)
            batch = encoded_trips(n, seed=60 + i)  # unique trip ids: latency joins on them
            log.info("latency at %.0f trips/s (%d trips, %d process(es))", rate, n, processes)
            out.append(latency.measure(s, producer, batch, rate, seen))
            seen += n
            latency.settle()
    finally:
        peak = scorer.stop()
    return out, peak


def _swap(plan: Plan, base: Settings, v1, v2_dir: Path, processes: int, logs: Path):  # noqa: ANN001, ANN202
    from edml.model_topic.publisher import publish_record

    s = variant_settings(base, "swap", "bench-swap-trips")
    publish_record(s, v1)
    rate = 2000.0
    n = int(rate * plan.swap_seconds)
    messages = encoded_trips(n, seed=99)
    scorer = Scorer(s, processes, plan.batch_size, logs / "swap-serve.log")
    try:
        scorer.wait_healthy()
        log.info("swap: %d trips at %.0f/s, v2 published after %.0f s", n, rate, plan.swap_seconds / 3)
        figures = swap.measure(s, messages, rate, v2_dir, publish_after_s=plan.swap_seconds / 3)
    finally:
        peak = scorer.stop()
    return figures, peak


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's "done when" figures, measured against their limits."""
    out = []
    edml_rows = [r for r in results["throughput"] if r["label"] == "edml serve"]
    best = max(edml_rows, key=lambda r: r["events_per_s"])
    for key, which in (("vs_ceiling", "the faster passthrough (edml's source and sink)"),
                       ("vs_bytewax_connectors", "the passthrough on Bytewax's Kafka connectors")):
        rated = [r for r in edml_rows if r.get(key) is not None]
        if rated:
            top = max(rated, key=lambda r: r[key])
            out.append({"name": f"edml ({top['processes']} process(es)) / {which}, same processes",
                        "measured": f"{top[key]:.2f}x", "limit": ">= 0.60x", "met": top[key] >= 0.6})
    for row in results["throughput"]:
        if row["label"] == routed.LABEL and row.get("vs_single_model") is not None:
            ratio = row["vs_single_model"]
            out.append({"name": f"taxi-routed, two routes + an ensemble ({row['processes']} process(es)) / "
                                "edml serve, single model, same processes",
                        "measured": f"{ratio:.2f}x", "limit": ">= 0.50x", "met": ratio >= 0.5})
    if best.get("vs_peer") is not None:
        out.append({"name": "edml best / peer", "measured": f"{best['vs_peer']:.0f}x", "limit": ">= 50x",
                    "met": best["vs_peer"] >= 50})
    for lat in results.get("latency", []):
        if lat["offered_per_s"] == 5000.0:
            out.append({"name": "p99 latency at 5,000 trips/s", "measured": f"{lat['p99_ms']:.1f} ms",
                        "limit": "<= 100 ms", "met": lat["p99_ms"] <= 100})
    s = results.get("swap")
    if s:
        ms = s["first_v2_after_publish_ms"]
        out.append({"name": "first v2 prediction after publish", "measured": f"{ms:.0f} ms", "limit": "<= 2000 ms",
                    "met": ms == ms and ms <= 2000})
        out.append({"name": "trips unscored during the swap", "measured": str(s["unscored_trips"]), "limit": "0",
                    "met": s["unscored_trips"] == 0})
    rss = [r["peak_rss_mb"] for r in results["throughput"] if r["label"] in ("edml serve", routed.LABEL)
           and r["peak_rss_mb"]]
    rss += [results.get("latency_peak_rss_mb") or 0, results.get("swap_peak_rss_mb") or 0]
    out.append({"name": "peak RSS of a scoring process", "measured": f"{max(rss):.0f} MB", "limit": "<= 1536 MB",
                "met": max(rss) <= 1536})
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the markdown table."""
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer trips and variants (about 3 minutes)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--trips", type=int, help="trips for the fast pipelines (default: the plan's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    os.environ.update(MODEL_THREADS_ENV)  # before TensorFlow loads here (publish gate, replay)
    plan = QUICK if args.quick else FULL
    if args.trips:
        plan = dataclasses.replace(plan, fast_trips=args.trips, slow_trips=min(plan.slow_trips, args.trips))
    results = run(plan, args.out)
    print(report.markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
