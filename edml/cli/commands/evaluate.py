"""``edml evaluate`` (the evaluation dataflow), ``edml scores`` (live error table), ``edml promote``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from edml.cli.commands.options import (
    BootstrapOpt,
    ConfigOpt,
    MetricsHostOpt,
    PipelineOpt,
    StateDirOpt,
    pipeline_settings_from,
    settings_from,
)
from edml.core.config import Settings
from edml.core.errors import OperatorError

log = logging.getLogger("edml.evaluate")


def _duration(help_text: str) -> typer.models.OptionInfo:
    return typer.Option(help=f"{help_text} (a duration: 90s, 15m, 24h, 1h30m, 2d).")


ModelOpt = Annotated[str | None, typer.Option("--model", help="Model name (default: every model of the pipeline).")]


def _reference(settings: Settings, path: Path | None, drift: bool, known: set[str]):  # noqa: ANN202 - Reference
    """The drift reference: the given file, else the desired model's manifest; None turns drift off."""
    from edml.evaluation.champion_reference import champion_reference
    from edml.evaluation.drift import load_reference

    if not drift:
        return None
    if path is not None:
        return load_reference(path, known)
    try:
        reference = champion_reference(settings, known)
        if reference is None:
            log.warning("no desired %s model on %s: drift check off (pass --reference)", settings.model_name,
                        settings.topics.models)
        return reference
    except OperatorError:
        raise
    except Exception as e:  # the evaluation still runs; only the drift check needs the reference
        log.warning("cannot read the desired model's reference (%s): drift check off (pass --reference)", e)
        return None


def evaluate(
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
    state_dir: StateDirOpt = None,
    window: Annotated[str, _duration("Tumbling window of the score aggregates, event time")] = "15m",
    lateness: Annotated[str, _duration("How long a window waits for stragglers before it is emitted")] = "5m",
    join_timeout: Annotated[str, _duration("How long an unmatched prediction or label waits (event time)")]
    = "24h",
    retention: Annotated[str | None, typer.Option(help="How long a window takes late evaluations "
                                                       "(default: the join timeout).")] = None,
    join_shards: Annotated[int, typer.Option(min=1, help="Keyed shards of the join state.")] = 16,
    reference: Annotated[Path | None, typer.Option(help="reference.json for the drift check (default: the "
                                                        "desired model's manifest).")] = None,
    drift: Annotated[bool, typer.Option(help="Check drift (PSI per window) on the input events and labels.")] = True,
    drift_window: Annotated[str, _duration("Window of the drift check; whole days compare the hour of day")]
    = "24h",
    psi_threshold: Annotated[float, typer.Option(help="Alert above this population stability index.")] = 0.25,
    drift_min_per_bin: Annotated[int, typer.Option(min=1, help="PSI only with this many events per bin.")] = 10,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker threads per process.")] = 1,
    process_id: Annotated[int | None, typer.Option("--process-id", "-i", help="This process's id in a cluster.")]
    = None,
    addresses: Annotated[str | None, typer.Option("--addresses", "-a", help="host:port of every process, "
                                                                            "';'-separated.")] = None,
    metrics_port: Annotated[int, typer.Option(envvar="EDML_EVAL_METRICS_PORT",
                                              help="Prometheus port; 0 turns it off.")] = 9101,
    metrics_host: MetricsHostOpt = None,
    recovery: Annotated[bool, typer.Option(help="Bytewax recovery under the state folder.")] = True,
    epoch_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between recovery snapshots.")] = 5.0,
    stop_at_end: Annotated[bool, typer.Option(help="Stop at the end of the input topics instead of tailing.")]
    = False,
    pipeline: PipelineOpt = None,
) -> None:
    """Join a pipeline's predictions (champion and shadow) with its labels; live figures per model version; drift."""
    from edml.dataflows.evaluation import drift_features, pipeline_flow
    from edml.evaluation.config import EvaluationConfig, parse_duration_ms
    from edml.pipelines.bound import open_pipeline, pipeline_settings
    from edml.runtime.service import (
        FlowOptions,
        check_cluster_port,
        check_topics,
        cluster_addresses,
        configure_logging,
        recovery_config,
        run_flow,
        start_metrics,
    )

    settings = settings_from(config, bootstrap_servers=bootstrap_servers, state_dir=state_dir,
                             metrics_host=metrics_host)
    bound = open_pipeline(pipeline, settings)
    settings = pipeline_settings(settings, bound.pipeline)
    if bound.pipeline.labels is None:
        raise bound.pipeline.error("declares no [labels]: there is nothing to evaluate against; add a [labels] table")
    configure_logging(logging.INFO)
    timeout_ms = parse_duration_ms(join_timeout)
    eval_config = EvaluationConfig(
        join_timeout_ms=timeout_ms,
        join_shards=join_shards,
        window_ms=parse_duration_ms(window),
        lateness_ms=parse_duration_ms(lateness),
        retention_ms=parse_duration_ms(retention) if retention else timeout_ms,
        drift_window_ms=parse_duration_ms(drift_window),
        psi_threshold=psi_threshold,
        drift_min_per_bin=drift_min_per_bin,
    )
    run = FlowOptions(workers=workers, process_id=process_id, addresses=cluster_addresses(process_id, addresses),
                      metrics_port=metrics_port or None, recovery=recovery, epoch_interval_s=epoch_interval)
    t = settings.topics
    needed = {t.predictions, t.shadow_predictions, t.labels, t.evaluations, t.scores, t.dead_letter}
    features = drift_features(bound)
    drift_reference = _reference(settings, reference, drift, features.names)
    if drift_reference is not None:
        needed |= {t.trips, t.alerts}
        log.info("drift check against %s: %s", drift_reference.source,
                 ", ".join(drift_reference.for_window(eval_config.drift_window_ms, features.seasonal).features))
    check_topics(settings, needed)

    check_cluster_port(run.addresses, run.process_id)
    start_metrics(run.metrics_port, lambda: True, settings.metrics_host)
    recovery_cfg = recovery_config(settings, "evaluation", process_id) if recovery else None
    if drift_reference is not None and reference is None and not stop_at_end:
        # the champion's reference: a promoted champion's replaces it for the windows that open after
        from edml.evaluation.champion_reference import ChampionFollower
        from edml.evaluation.drift import References

        drift_reference = References(drift_reference)
        ChampionFollower(settings, drift_reference, features.names).start()
    flow = pipeline_flow(settings, eval_config, bound, drift_reference, tail=not stop_at_end)
    # Bytewax's Kafka source does not watch STOP, and an input that ends flushes the open windows
    run_flow(flow, run, recovery_cfg, sources_honour_stop=False)


def scores(
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
    model: ModelOpt = None,
    last: Annotated[int, typer.Option(min=1, help="How many of the newest windows to show.")] = 8,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG: the task's loss per version over "
                                              "every window on the topic.")] = None,
    pipeline: PipelineOpt = None,
) -> None:
    """Print the live figures of every model version of a pipeline, window by window, from the scores topic."""
    from rich.console import Console

    from edml.evaluation.scores import plot_scores, read_score_windows, scores_table

    if plot is not None and plot.suffix.lower() != ".png":
        raise OperatorError(f"--plot {plot}: the plot is a PNG, name it <file>.png")

    settings = pipeline_settings_from(settings_from(config, bootstrap_servers=bootstrap_servers), pipeline)
    # a pipeline's scores topic holds its models only: every route, fallback and ensemble unless --model
    windows = read_score_windows(settings, model)
    name = model or f"pipeline {settings.pipeline}"
    if not windows:
        typer.echo(f"no scores for {name} on {settings.topics.scores} yet (is `edml evaluate` running?)")
        return
    Console(width=140).print(scores_table(windows, last))
    if plot is not None:
        plot_scores(windows, plot, title=f"{name}: live figures per model version ({settings.topics.scores})")
        typer.echo(f"wrote {plot}")


def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    challenger: Annotated[str, typer.Option("--challenger", help="The challenger version to promote.")],
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
    windows: Annotated[int, typer.Option("--windows", "-k", min=1, help="Compare over the last K common "
                                                                        "windows.")] = 4,
    margin: Annotated[float, typer.Option(help="The challenger's loss (MAE; binary: log loss) must be below the "
                                               "champion's by this fraction.")] = 0.05,
    force: Annotated[bool, typer.Option(help="Promote even when the challenger does not win.")] = False,
    retire_champion: Annotated[bool, typer.Option(help="Drop the old champion instead of keeping it as a "
                                                       "challenger.")] = False,
    signing_key: Annotated[Path | None, typer.Option("--signing-key", envvar="EDML_MODEL_SIGNING_KEY",
                                                     help="ed25519 private key (PEM file) to sign with.")] = None,
    pipeline: PipelineOpt = None,
) -> None:
    """Make a shadow challenger the champion when its live loss (MAE; binary: log loss) beats the champion's."""
    from rich.console import Console
    from rich.table import Table

    from edml.evaluation.promotion import promote as do_promote

    settings = pipeline_settings_from(settings_from(config, bootstrap_servers=bootstrap_servers), pipeline)
    result = do_promote(settings, name, challenger, last=windows, margin=margin, force=force,
                        keep_old=not retire_champion, signing_key=signing_key, now_ms=int(time.time() * 1000))
    c = result.comparison
    loss = c.loss_label
    table = Table(title=f"{name}: champion {c.champion.version} vs challenger {c.challenger.version} ({loss})")
    for col in ("window (New York)", f"{c.champion.version} count", f"{c.champion.version} {loss}",
                f"{c.challenger.version} count", f"{c.challenger.version} {loss}"):
        table.add_column(col, justify="left" if col.startswith("window") else "right")
    for row in c.rows():
        table.add_row(*map(str, row))
    Console(width=140).print(table)
    typer.echo(c.verdict())
    if not result.promoted:
        typer.echo(f"not promoted: {name} stays on {c.champion.version} (--force overrides)", err=True)
        raise typer.Exit(1)
    assert result.record is not None
    how = " (forced)" if result.forced else ""
    typer.echo(f"promoted{how}: {name} {challenger} is the champion; challengers now "
               f"{', '.join(result.record.challengers) or 'none'}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate``, ``scores`` and ``promote``."""
    app.command("evaluate")(evaluate)
    app.command("scores")(scores)
    app.command("promote")(promote)
