"""``edml serve``: the scoring dataflow."""

from __future__ import annotations

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
from edml.core.errors import OperatorError


def serve(
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
    state_dir: StateDirOpt = None,
    model_name: Annotated[str | None, typer.Option(help="Model name to serve (default: the pipeline's).")] = None,
    pipeline: PipelineOpt = None,
    processes: Annotated[int, typer.Option("--processes", "-p", min=1, help="Processes on this host.")] = 1,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker threads per process.")] = 1,
    process_id: Annotated[int | None, typer.Option("--process-id", "-i", help="This process's id in a cluster.")]
    = None,
    addresses: Annotated[str | None, typer.Option("--addresses", "-a", help="Every process's host:port, ';'-joined")]
    = None,
    cluster_port: Annotated[int, typer.Option(help="First port of the local cluster (with --processes).")] = 2101,
    batch_size: Annotated[int, typer.Option(min=1, help="Most events polled and scored at once.")] = 1000,
    metrics_port: Annotated[int, typer.Option(envvar="EDML_METRICS_PORT", help="Prometheus port (with "
                                              "--processes, + process index); 0 turns it off.")] = 9100,
    metrics_host: MetricsHostOpt = None,
    recovery: Annotated[bool, typer.Option(help="Bytewax recovery under the state folder.")] = True,
    epoch_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between recovery snapshots.")] = 5.0,
    keep_versions: Annotated[int, typer.Option(min=1, help="Model versions kept in the model store.")] = 3,
    per_event: Annotated[bool, typer.Option(help="One model call per event (for benchmarks only).")] = False,
    stop_at_end: Annotated[bool, typer.Option(help="Stop at the end of the input topic instead of tailing it.")]
    = False,
) -> None:
    """Score a pipeline's input topic with its model from the model topic (Bytewax dataflow)."""
    import logging
    import sys

    from edml.dataflows.scoring import build_flow
    from edml.runtime.cluster import launch_processes
    from edml.runtime.service import FlowOptions, cluster_addresses, configure_logging, state_dir_writable
    from edml.scoring.service import ScorerOptions, run_scorer

    settings = settings_from(config, bootstrap_servers=bootstrap_servers, state_dir=state_dir, model_name=model_name,
                             metrics_host=metrics_host)
    settings = pipeline_settings_from(settings, pipeline)
    state_dir_writable(settings.state_dir)
    configure_logging(logging.INFO)
    if processes > 1:
        if process_id is not None or addresses:
            raise OperatorError("use either --processes (one host) or --process-id/--addresses (a cluster)")
        argv = _without_flag(sys.argv[2:], ("--processes", "-p", "--metrics-port"))
        raise typer.Exit(launch_processes(["serve"], argv, processes, cluster_port, metrics_port or None))
    model_call = None
    if per_event:
        try:
            from bench.per_event import call_per_event
        except ImportError:
            raise OperatorError("--per-event is for benchmarks: run it from a checkout of the repository "
                                "(it needs the bench package)") from None
        model_call = call_per_event
    run = FlowOptions(workers=workers, process_id=process_id, addresses=cluster_addresses(process_id, addresses),
                      metrics_port=metrics_port or None, recovery=recovery, epoch_interval_s=epoch_interval)
    run_scorer(settings, ScorerOptions(flow=run, batch_size=batch_size, keep_versions=keep_versions,
                                       model_call=model_call, tail=not stop_at_end), build_flow)


def _without_flag(argv: list[str], names: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in names:
            skip = True
            continue
        if any(arg.startswith(n + "=") for n in names):
            continue
        out.append(arg)
    return out


def register(app: typer.Typer) -> None:
    """Add ``serve``."""
    app.command("serve")(serve)


