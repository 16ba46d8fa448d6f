"""``edml autopilot run`` and ``edml autopilot status``: a pipeline's model retrained without a person."""

from __future__ import annotations

from typing import Annotated

import typer

from edml.cli.commands.options import BootstrapOpt, ConfigOpt, PipelineOpt, settings_from

autopilot_app = typer.Typer(help="Continuous training: drift or a high live loss -> train on recorded traffic -> "
                                 "replay gate -> shadow -> promote or retire, hands-free.", no_args_is_help=True)


@autopilot_app.command("run")
def run(
    pipeline: PipelineOpt = None,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="Seconds between two looks at the topics.")] = 5.0,
    signing_key: Annotated[str | None, typer.Option("--signing-key", envvar="EDML_MODEL_SIGNING_KEY",
                                                    help="ed25519 private key (PEM file) to sign the records "
                                                         "it publishes with.")] = None,
    once: Annotated[bool, typer.Option(help="One pass (record, look, act), then exit.")] = False,
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Watch a pipeline and retrain its model as its [autopilot] table declares, until Ctrl-C or SIGTERM."""
    import logging
    import signal
    import threading

    from edml.autopilot.controller import Controller
    from edml.pipelines.bound import open_pipeline, pipeline_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    base = settings_from(config, bootstrap_servers=bootstrap_servers)
    bound = open_pipeline(pipeline, base)
    controller = Controller(pipeline_settings(base, bound.pipeline), bound, signing_key=signing_key, poll_s=poll)
    if once:
        controller.tick()
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    controller.run(stop)


@autopilot_app.command("status")
def status(
    pipeline: PipelineOpt = None,
    last: Annotated[int, typer.Option("--last", min=1, help="Show the last N runs.")] = 10,
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Print what the controller did, run by run, from the pipeline's autopilot topic."""
    from edml.autopilot.events import format_history, read_history
    from edml.autopilot.progress import load_progress
    from edml.pipelines.bound import open_pipeline, pipeline_settings

    base = settings_from(config, bootstrap_servers=bootstrap_servers)
    bound = open_pipeline(pipeline, base)
    settings = pipeline_settings(base, bound.pipeline)
    events = read_history(settings, bound.name)
    runs = list(dict.fromkeys(e.run_id for e in events))[-last:]
    shown = [e for e in events if e.run_id in set(runs)]
    if not shown:
        typer.echo(f"no autopilot events for pipeline {bound.name} on {settings.topics.autopilot}")
    for line in format_history(shown):
        typer.echo(line)
    progress = load_progress(settings.state_dir)
    typer.echo(f"now: {progress.phase}" + (f" (run {progress.run_id}, candidate {progress.candidate or '-'})"
                                          if progress.phase != "idle" else ""))


def register(app: typer.Typer) -> None:
    """Add the ``autopilot`` group."""
    app.add_typer(autopilot_app, name="autopilot")
