"""The moderation pipeline's throughput beside its passthrough ceiling on the same comments, and where the time goes.

One dedicated broker; N generated comments on the moderation pipeline's input topic; then, one
process each, on the same messages:

* ``ceiling-edml``: edml's own source and sink copying bytes (``bench.ceiling``, no decoding, no model);
* ``moderation``: ``edml serve --pipeline moderation --stop-at-end`` with a small trained classifier.

The share of time in the model call is the classifier's own cost per comment (its SavedModel
called in this process on batches of the serve's batch size, the same texts, one thread as the
serve has) over the serve's cost per comment (1 / its steady rate). Run from a checkout:
``python -m bench.moderation [--comments 20000] [--batch-size 1000]``; it prints a table and
writes ``bench/work/moderation/results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from bench.common import (
    MODEL_THREADS_ENV,
    WORK,
    create_pipeline_topics,
    edml_env,
    free_ports,
    start_broker,
    variant_settings,
)
from bench.pipelines import RunFigures, _answers, _figures, _run, run_ceiling, serve_command
from edml.core.config import Settings, Topics

MODEL = "comment-moderation"
PREFIX = "bench-mod-"


def trained_model(folder: Path) -> Path:
    """A small moderation classifier, trained once and kept under bench/work."""
    from edml.trainer.moderation.train import train_small

    if not (folder / "saved_model").is_dir():
        train_small(folder, seed=0, n=6_000, epochs=6)
    return folder


def model_seconds_per_comment(saved_model: Path, texts: list[str], batch_size: int) -> float:
    """The classifier's own cost per comment: its serving function on batches, one thread, best of three passes."""
    from edml.trainer.moderation.model import load_serving, predict_texts

    fn = load_serving(saved_model)
    predict_texts(fn, texts[:batch_size], batch_size)  # trace and warm up
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        predict_texts(fn, texts, batch_size)
        best = min(best, time.perf_counter() - started)
    return best / len(texts)


def run_moderation(base: Settings, comments: int, batch_size: int, logs: Path) -> dict[str, object]:
    """Produce the comments, run the ceiling and the moderation serve over them; their figures and the model share."""
    from edml.model_topic.publisher import publish_model
    from edml.trainer.moderation.comments import generate_comments
    from edml.trainer.moderation.producing import produce_comments

    from edml.pipelines.bound import open_pipeline, pipeline_settings

    model_dir = trained_model(WORK / "moderation-model")
    generated = generate_comments(comments, seed=7)
    prefixed = dataclasses.replace(base, topics=Topics().with_prefix(PREFIX))
    bound = open_pipeline("moderation", prefixed)
    s = pipeline_settings(prefixed, bound.pipeline)  # what `edml serve --pipeline moderation` derives from PREFIX
    create_pipeline_topics(s)
    produce_comments(s, generated)

    ceiling_settings = variant_settings(base, "moderation-ceiling", s.topics.trips, append_time=True)
    ceiling = run_ceiling(ceiling_settings, "edml", 1, comments, logs, batch_size=batch_size)

    port = free_ports(1)
    env = {**{k: v for k, v in edml_env(s).items() if not k.startswith("EDML_TOPIC_")}, "EDML_TOPIC_PREFIX": PREFIX}
    cmd = [*serve_command(1, batch_size, metrics_port=port), "--pipeline", "moderation"]
    wall, peak = _run([cmd], env, logs / f"moderation-b{batch_size}.log", 600, ready=lambda: _answers(port),
                      go=lambda: publish_model(s, model_dir, MODEL, version="v1", force=True, pipeline=bound) and None)
    served = _figures("moderation", s, s.topics.predictions, 1, comments, wall, peak)

    model_s = model_seconds_per_comment(model_dir / "saved_model", [g.comment.text for g in generated], batch_size)
    return {"ceiling": dataclasses.asdict(ceiling), "moderation": dataclasses.asdict(served),
            "ratio": served.events_per_s / ceiling.events_per_s, "model_us_per_comment": model_s * 1e6,
            "model_share": model_s * served.events_per_s, "comments": comments, "batch_size": batch_size}


def table(results: dict[str, object]) -> str:
    """The run as a text table."""
    rows: list[RunFigures] = [RunFigures(**results["ceiling"]), RunFigures(**results["moderation"])]  # type: ignore[arg-type]
    lines = [f"{'variant':<14}{'events/s':>10}{'steady s':>10}{'peak MB':>9}{'wall s':>8}"]
    lines += [f"{r.variant:<14}{r.events_per_s:>10.0f}{r.steady_seconds:>10.1f}{r.peak_rss_mb:>9.0f}"
              f"{r.wall_seconds:>8.1f}" for r in rows]
    lines.append(f"moderation / ceiling: {results['ratio']:.2f}x; model call {results['model_us_per_comment']:.0f} "
                 f"us/comment = {results['model_share']:.0%} of the serve's time per comment")
    return "\n".join(lines)


def main() -> None:
    """Run the moderation bench on its own broker and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    os.environ.update(MODEL_THREADS_ENV)  # this process's model calls get the serve's threads (set before TF starts)
    out_dir = WORK / "moderation"
    run_dir = out_dir / time.strftime("run-%Y%m%dT%H%M%S")  # a fresh broker, state and artifact store per run
    broker = start_broker(run_dir / "broker")
    try:
        base = Settings(bootstrap_servers=broker.bootstrap_servers, partitions=2, state_dir=run_dir / "state",
                        artifact_store=f"file://{run_dir / 'artifacts'}")
        results = run_moderation(base, args.comments, args.batch_size, run_dir / "logs")
    finally:
        broker.down()
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out_dir / "results.md").write_text(table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
