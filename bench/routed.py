"""The taxi pipeline with two routes and an ensemble, in ``make bench`` beside the single-model taxi pipeline.

The variant is the built-in ``taxi-routed`` declaration (airport trips to ``trip-duration-airport``,
every other trip to ``trip-duration``, ``trip-duration-basic`` as the fallback of both) whose airport
route points to an ensemble instead: ``airport-mean``, the mean of the airport model and the full
model. So a batch costs one call of the full model on the default route's trips, and a call of each
member on the airport trips (whose member predictions also go to the shadow topic).

Each run declares it under its own name in ``bench/work/pipelines`` (``EDML_PIPELINES_DIR``), puts the
same trips the other rows read on that pipeline's own input topic, and runs ``edml serve --pipeline
NAME --stop-at-end`` over them the way ``bench.run`` runs ``edml serve``: every process started and
holding, then the three models published at once.

On its own, beside the single-model taxi pipeline on a broker of its own (about a minute once the
models are trained): ``python -m bench.routed [--trips 60000] [--processes 1]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import time
from pathlib import Path

from bench.common import (
    MODEL_THREADS_ENV,
    WORK,
    create_pipeline_topics,
    edml_env,
    free_ports,
    produce_encoded,
    start_broker,
    variant_settings,
)
from bench.pipelines import RunFigures, _answers, _figures, _run, run_serve, serve_command
from edml.core.config import Settings, Topics
from edml.pipelines.declaration import BUILT_IN_DIR, load_pipeline

ROUTED = "taxi-routed"
ENSEMBLE = "airport-mean"
LABEL = "edml serve --pipeline taxi-routed (two routes + an ensemble)"
PIPELINES_DIR = WORK / "pipelines"
_AIRPORT_ROUTE = 'model = "trip-duration-airport"'


def ensure_models(work: Path, full_dir: Path) -> dict[str, Path]:
    """Model name -> folder: the full model given, the airport model and the fallback (trained once, cached)."""
    from edml.trainer.kinds import AIRPORT, BASIC, FULL
    from edml.trainer.train import train_small

    out = {FULL.model_name: full_dir}
    # the airport model learns from the airport trips of 60,000 (about 6,500)
    for kind, n in ((AIRPORT, 60_000), (BASIC, 20_000)):
        folder = work / "models" / kind.name
        if not (folder / "saved_model" / "saved_model.pb").exists():
            shutil.rmtree(folder, ignore_errors=True)
            train_small(folder, seed=1, n=n, kind=kind)
        out[kind.model_name] = folder
    return out


def declare(name: str, folder: Path = PIPELINES_DIR) -> Path:
    """Write pipeline ``name``: taxi-routed with the airport route to the ``airport-mean`` ensemble; its path."""
    text = (BUILT_IN_DIR / f"{ROUTED}.toml").read_text()
    if text.count(_AIRPORT_ROUTE) != 1:  # the declaration changed: say so rather than bench something else
        raise RuntimeError(f"{ROUTED}.toml no longer has one route line {_AIRPORT_ROUTE!r}; update bench/routed.py")
    text = text.replace(_AIRPORT_ROUTE, f'model = "{ENSEMBLE}"')
    text += (f"\n# the bench's variant: airport trips get the mean of the airport model and the full model\n"
             f"[ensembles.{ENSEMBLE}]\n"
             f'members = ["trip-duration-airport", "trip-duration"]\n'
             f'combine = "mean"\n')
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def run_routed(base: Settings, name: str, trips: list[tuple[bytes, bytes]], models: dict[str, Path],
               processes: int, batch_size: int, logs: Path, timeout: float = 600) -> RunFigures:
    """Declare ``name``, produce ``trips`` onto its input topic, serve it to the end; its throughput figures."""
    from edml.model_topic.publisher import publish_model

    from edml.pipelines.bound import bind_pipeline, pipeline_settings

    declare(name)
    prefix = f"bench-{name}-"
    env_dir = {"EDML_PIPELINES_DIR": str(PIPELINES_DIR)}
    prefixed = dataclasses.replace(base, topics=Topics().with_prefix(prefix), state_dir=base.state_dir / name)
    bound = bind_pipeline(load_pipeline(name, env=env_dir))  # read from PIPELINES_DIR, as the serve will
    s = pipeline_settings(prefixed, bound.pipeline)  # what `edml serve --pipeline NAME` derives from the prefix
    create_pipeline_topics(s)
    produce_encoded(s, s.topics.trips, trips)

    def publish() -> None:
        # a version of each run's own: the artifact store is shared by every variant of a bench run
        for model_name, folder in models.items():
            publish_model(s, folder, model_name, version=f"{name}-v1", force=True, pipeline=bound)

    port = free_ports(processes)
    env = {**{k: v for k, v in edml_env(s).items() if not k.startswith("EDML_TOPIC_")},
           "EDML_TOPIC_PREFIX": prefix, **env_dir}
    cmd = [*serve_command(processes, batch_size, metrics_port=port), "--pipeline", name]
    wall, peak = _run([cmd], env, logs / f"{name}-p{processes}-b{batch_size}.log", timeout,
                      ready=lambda: all(_answers(port + i) for i in range(processes)), go=publish)
    return _figures(name, s, s.topics.predictions, processes, len(trips), wall, peak)


def main() -> None:
    """Run the single-model taxi pipeline and the routed one over the same trips on a broker of their own."""
    from edml.model_topic.publisher import publish_model

    from bench.run import MODEL_NAME, encoded_trips
    from bench.run import ensure_models as ensure_v1_v2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=60_000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.update(MODEL_THREADS_ENV)  # this process's publish gate gets the serve's threads (before TF starts)
    run_dir = WORK / "routed" / time.strftime("run-%Y%m%dT%H%M%S")
    v1_dir, _ = ensure_v1_v2(WORK)
    models = ensure_models(WORK, v1_dir)
    trips = encoded_trips(args.trips, seed=7)
    broker = start_broker(run_dir / "broker")
    try:
        base = Settings(bootstrap_servers=broker.bootstrap_servers, partitions=2, state_dir=run_dir / "state",
                        artifact_store=f"file://{run_dir / 'artifacts'}")
        s = variant_settings(base, "single", "bench-trips", append_time=True)
        produce_encoded(s, s.topics.trips, trips)
        single = run_serve(s, "edml", args.processes, len(trips), run_dir / "logs",
                           lambda: publish_model(s, v1_dir, MODEL_NAME, version="v1", force=True) and None,
                           batch_size=args.batch_size)
        routed = run_routed(base, f"routed-p{args.processes}", trips, models, args.processes, args.batch_size,
                            run_dir / "logs")
    finally:
        broker.down()
    print(f"edml serve (single model): {single.events_per_s:,.0f} events/s\n{LABEL}: {routed.events_per_s:,.0f} "
          f"events/s = {routed.events_per_s / single.events_per_s:.2f}x of the single model "
          f"({args.trips:,} trips, {args.processes} process(es))")


if __name__ == "__main__":
    main()
