"""``edml record`` and ``edml replay``: record live traffic, replay it through any model version."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edml.cli.commands.options import BootstrapOpt, ConfigOpt, PipelineOpt, settings_from
from edml.core.config import Settings
from edml.core.errors import OperatorError

if TYPE_CHECKING:
    from edml.pipelines.bound import BoundPipeline

ReportFormat = Annotated[str, typer.Option("--report", help="Report format: md or html.")]


def _pipeline(settings: Settings, name: str | None) -> tuple[BoundPipeline, Settings]:
    """The pipeline ``name`` (None: the default), checked, and the settings of its jobs."""
    from edml.pipelines.bound import open_pipeline, pipeline_settings

    bound = open_pipeline(name, settings)
    return bound, pipeline_settings(settings, bound.pipeline)


def record(
    out: Annotated[Path, typer.Option("--out", "-o", help="Archive folder (created, or appended to).")],
    topics: Annotated[str | None, typer.Option(help="Topic roles to record, comma-separated: events (the pipeline's "
                                               "input topic), labels (its label topic), or another of its topics "
                                               "[default: events,labels; events when the pipeline declares no "
                                               "labels].")]
    = None,
    start: Annotated[str, typer.Option("--from", help="Where new partitions start: earliest or latest.")]
    = "earliest",
    stop_at_end: Annotated[bool, typer.Option(help="Stop once every partition reached its end as of the start.")]
    = False,
    duration: Annotated[float | None, typer.Option(min=0.1, help="Stop after this many seconds.")] = None,
    max_segment_mb: Annotated[float, typer.Option(min=0.001, help="Roll a segment at this size (MiB).")] = 64.0,
    max_segment_age: Annotated[float, typer.Option(min=0.1, help="Roll a segment after this many seconds.")]
    = 3600.0,
    generate: Annotated[int | None, typer.Option(min=1, help="Instead of Kafka: archive N generated taxi trips "
                                                 "(the taxi pipeline's example data).")]
    = None,
    seed: Annotated[int, typer.Option(help="Seed of --generate.")] = 1001,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of --generate.")] = 2,
    pipeline: PipelineOpt = None,
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Mirror a pipeline's input and label topics into a replay archive (Ctrl-C stops and closes it)."""
    import logging
    import signal
    import threading

    from rich.console import Console

    from edml.cli.progress import interactive
    from edml.pipelines.declaration import DEFAULT_PIPELINE
    from edml.replay.archive import EVENTS, LABELS
    from edml.replay.recorder import RecordStats, record_topics, write_archive

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    bound, settings = _pipeline(settings_from(config, bootstrap_servers=bootstrap_servers), pipeline)
    if generate is not None:
        if bound.name != DEFAULT_PIPELINE:
            raise OperatorError(f"--generate makes the {DEFAULT_PIPELINE} pipeline's example trips, not events of "
                                f"pipeline {bound.name}: record its topics instead")
        from edml.trainer.recording import generated_messages

        stats = write_archive(out, generated_messages(generate, seed, partitions=partitions, topics=settings.topics))
        print(f"archived {generate} generated trips and their labels (seed {seed}) into {out}: "
              f"{stats.segments} segments in {stats.seconds:.1f} s")
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console = Console(stderr=True)
    show = interactive(console.file)

    def progress(stats: RecordStats) -> None:
        if show:
            counts = ", ".join(f"{role} {n}" for role, n in stats.messages.items())
            console.print(f"recording: {counts}", end="\r")

    roles = [t.strip() for t in topics.split(",") if t.strip()] if topics is not None else \
        [EVENTS, LABELS] if bound.pipeline.labels is not None else [EVENTS]
    stats = record_topics(
        settings, out, roles, start=start, stop_at_end=stop_at_end,
        duration_s=duration, max_segment_bytes=int(max_segment_mb * 1024 * 1024), max_segment_age_s=max_segment_age,
        stop=stop, on_progress=progress,
    )
    counts = ", ".join(f"{n} {role}" for role, n in stats.messages.items())
    rate = stats.total / stats.seconds if stats.seconds > 0 else 0.0
    print(f"archived {counts} into {out} in {stats.seconds:.1f} s ({rate:,.0f} messages/s); "
          f"the archive has {stats.segments} segments")


def replay(
    archive: Annotated[Path, typer.Option("--input", "-i", help="Replay archive folder (from `edml record`).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model version in the artifact store, or a "
                                       "trained model folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: predictions, report, plots.")],
    against: Annotated[str | None, typer.Option(help="Compare with this version or folder (the champion; "
                                                "with --gate the default is the model topic's desired version).")]
    = None,
    gate: Annotated[bool, typer.Option(help="Exit 1 when --model's loss (MAE, or log loss for a binary task) is "
                                       "worse than the champion's beyond --tolerance.")] = False,
    tolerance: Annotated[float, typer.Option(min=0.0, help="Relative loss increase the gate allows.")] = 0.05,
    diff_threshold: Annotated[float, typer.Option(min=0.0, help="Count events whose predictions differ between "
                                                  "versions by more than this (relative; absolute for binary "
                                                  "scores).")] = 0.10,
    report: ReportFormat = "md",
    batch_size: Annotated[int, typer.Option(min=1, help="Events scored at once (as in `edml serve`).")] = 1000,
    store: Annotated[str | None, typer.Option(help="Artifact store URI (env EDML_ARTIFACT_STORE).")] = None,
    model_name: Annotated[str | None, typer.Option(help="Model name (default: the pipeline's model).")] = None,
    progress: Annotated[bool | None, typer.Option(help="Progress bar (default: when stderr is a terminal, "
                                                  "not in CI).")]
    = None,
    pipeline: PipelineOpt = None,
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Replay an archive through model versions with the scoring dataflow of `edml serve`; report and gate."""
    if report not in ("md", "html"):
        raise OperatorError(f"--report must be md or html, not {report!r}")
    import tempfile

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edml.cli.progress import interactive
    from edml.replay.archive import EVENTS, ArchiveReader
    from edml.replay.file_io import output_columns, read_predictions
    from edml.replay.gate import decide
    from edml.replay.models import desired_champion, load_desired, resolve_model
    from edml.replay.report import build_report, judging_of, pipeline_labels, write_report
    from edml.replay.run import replay_archive, replay_serdes

    bound, settings = _pipeline(settings_from(config, bootstrap_servers=bootstrap_servers, artifact_store=store),
                                pipeline)
    if model_name is not None:
        settings = settings.with_overrides(model_name=model_name)
    name = settings.model_name
    reader = ArchiveReader(archive)  # a damaged archive fails here, before any model loads
    serdes = replay_serdes(settings, bound)  # recorded with a registry: its events are read through it
    events_role = reader.role_for(EVENTS, settings.topics.trips)
    if events_role is None:
        raise OperatorError(f"archive {archive} holds no events of pipeline {bound.name} (topic "
                            f"{settings.topics.trips}; roles: {', '.join(reader.roles()) or 'none'})")
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="edml-replay-") as work:
        candidate = resolve_model(model, settings, name, Path(work) / "candidate", bound=bound)
        champion = None
        if against is not None:
            champion = resolve_model(against, settings, name, Path(work) / "champion", bound=bound)
        elif gate:
            desired = desired_champion(settings, name)
            champion = load_desired(desired, Path(work) / "champion", bound) if desired is not None else None
        serving, challengers = (candidate, ()) if champion is None else (champion, (candidate,))
        bar = Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
                       TimeRemainingColumn(), console=console,
                       disable=not (interactive(console.file) if progress is None else progress))
        with bar:
            task = bar.add_task("replay", total=reader.count(events_role))
            result = replay_archive(reader, serving, out, challengers, batch_size=batch_size, serdes=serdes,
                                    bound=bound, settings=settings, on_batch=lambda n: bar.advance(task, n))
    predictions = read_predictions(result.predictions_path)
    labels = pipeline_labels(reader, bound, serdes)
    judging = judging_of(bound.pipeline, output_columns([serving.prediction_schema], bound.pipeline.input.key))
    summary = build_report(result, predictions, labels, judging, diff_threshold)
    report_path = write_report(summary, predictions, labels, out, report)

    print(f"replayed {result.events} events of pipeline {bound.name} from {archive} in {result.seconds:.2f} s: "
          f"{result.events_per_s:,.0f} events/s")
    kinds = ", ".join(f"{k}: {n}" for k, n in result.dead_letter_kinds.items())
    print(f"dead letters: {result.dead_letters}" + (f" ({kinds}) -> {result.dead_letters_path}" if kinds else ""))
    for s in summary.versions:
        if s.with_label:
            figures = ", ".join(f"{k} {v:.4g}" for k, v in s.figures.items() if v is not None)
            errors = f"{figures} on {s.with_label} events with a label ({judging.prediction} vs {judging.label})"
        else:
            errors = "no labels in the archive: no error figures"
        print(f"{s.version} ({s.role}): {s.predictions} predictions, {errors}")
    for d in summary.diffs:
        share = d.differing / d.compared if d.compared else 0.0
        limit = f"{d.threshold:.0%}" if d.relative else f"{d.threshold:g}"
        largest = f"{d.max_difference:.1%}" if d.relative else f"{d.max_difference:.3g}"
        print(f"{d.version} vs {d.baseline}: {d.differing} of {d.compared} events ({share:.1%}) differ by more "
              f"than {limit} (max {largest})")
    if result.alerts:
        print(f"alerts: {result.alerts} -> {result.alerts_path}")
    print(f"predictions: {result.predictions_path}; report: {report_path}")
    if gate:
        candidate_role = "champion" if champion is None else "challenger"
        candidate_stats = summary.stats(candidate.version, candidate_role)
        assert candidate_stats is not None  # the replay scored every event with the candidate
        decision = decide(candidate_stats,
                          None if champion is None else summary.stats(champion.version, "champion"), tolerance)
        print(decision.reason, file=sys.stdout if decision.passed else sys.stderr)
        if not decision.passed:
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``record`` and ``replay`` to the CLI."""
    app.command("record")(record)
    app.command("replay")(replay)
