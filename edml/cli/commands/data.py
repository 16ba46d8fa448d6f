"""``edml generate`` (synthetic trips to an Avro file) and ``edml produce`` (synthetic trips to Kafka)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from edml.cli.commands.options import BootstrapOpt, ConfigOpt, settings_from
from edml.core.errors import OperatorError

SeedOpt = Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same trips.")]
DriftStartOpt = Annotated[
    str | None,
    typer.Option(
        "--drift-start",
        help="From this pick-up time (ISO 8601; without a zone it is the city's wall clock) traffic slows.",
    ),
]
DriftSlowdownOpt = Annotated[
    float, typer.Option("--drift-slowdown", help="Traffic slow-down from --drift-start: speeds / (1 + X).")
]


def _parse_time(value: str, flag: str) -> int:
    from edml.trainer.generator import wall_clock_ms

    try:
        return wall_clock_ms(datetime.fromisoformat(value))
    except ValueError:
        raise OperatorError(f"{flag} {value!r} is not an ISO 8601 time (e.g. 2024-01-15T08:00)") from None


def _drift(start_ms: int | None, slowdown: float):  # noqa: ANN202 - trainer imported lazily
    from edml.trainer.generator import Drift

    if start_ms is None:
        if slowdown:
            raise OperatorError("--drift-slowdown needs --drift-start (or --drift-after for produce)")
        return None
    if slowdown <= -1.0:
        raise OperatorError(f"--drift-slowdown must be > -1 (speeds are divided by 1 + X), got {slowdown}")
    return Drift(start_ms=start_ms, slowdown=slowdown)


def generate(
    out: Annotated[Path, typer.Option("--out", help="The Avro container file to write.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of trips.")] = 200_000,
    seed: SeedOpt = 0,
    start: Annotated[
        str, typer.Option("--start", help="First possible pick-up time (ISO 8601, city wall clock).")
    ] = "2024-01-01T00:00",
    span_days: Annotated[
        float, typer.Option("--span-days", min=0.001, help="Pick-ups spread over this many days.")
    ] = 28.0,
    drift_start: DriftStartOpt = None,
    drift_slowdown: DriftSlowdownOpt = 0.0,
) -> None:
    """Generate synthetic NYC-like trips (pick-up and drop-off) into an Avro container file of TripExample records."""
    from edml.cli.progress import progress_bar
    from edml.trainer.datafiles import write_examples
    from edml.trainer.generator import generate_columns

    start_ms = _parse_time(start, "--start")
    drift_ms = _parse_time(drift_start, "--drift-start") if drift_start else None
    with progress_bar() as progress:
        task = progress.add_task(f"generating {n:,} trips", total=None)
        columns = generate_columns(n, seed, start_ms, _drift(drift_ms, drift_slowdown), span_days)
        progress.update(task, description=f"writing {out.name}", total=n, completed=0)
        write_examples(out, columns, seed, on_progress=lambda rows: progress.update(task, completed=rows))
    typer.echo(f"wrote {len(columns)} trips to {out} ({out.stat().st_size / 1e6:.1f} MB, seed {seed})")


def produce(
    rate: Annotated[float, typer.Option("--rate", min=0.001, help="Pick-ups per second.")] = 100.0,
    duration: Annotated[float, typer.Option("--duration", min=0.001, help="Seconds of pick-ups to produce.")] = 60.0,
    seed: SeedOpt = 0,
    time_scale: Annotated[
        float,
        typer.Option(
            "--time-scale", min=0.001, help="A drop-off comes duration_s / time-scale seconds after its pick-up."
        ),
    ] = 60.0,
    drift_start: DriftStartOpt = None,
    drift_after: Annotated[
        float | None, typer.Option("--drift-after", help="Traffic slows this many seconds after the start.")
    ] = None,
    drift_slowdown: DriftSlowdownOpt = 0.0,
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Produce synthetic trips to Kafka at a rate: pick-ups to the trips topic, drop-offs when each trip ends.

    Pick-up times start at the city's wall clock now. Time is compressed for drop-offs: each is
    produced duration_s / --time-scale seconds after its pick-up (its end time field still holds the true end).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edml.cli.progress import interactive
    from edml.kafka.topics import existing_topics
    from edml.trainer.generator import now_wall_clock_ms, stream_trips
    from edml.trainer.producing import ProduceStats, produce_live

    settings = settings_from(config, bootstrap_servers=bootstrap_servers)
    # Checked before the first trip: librdkafka would only fail the deliveries, at their timeout.
    missing = sorted({settings.topics.trips, settings.topics.labels} - existing_topics(settings))
    if missing:
        which = f"topics {' and '.join(missing)} do" if len(missing) > 1 else f"topic {missing[0]} does"
        raise OperatorError(f"{which} not exist on {settings.bootstrap_servers}: create them with `edml topics create`")
    n = max(1, round(rate * duration))
    start_ms = now_wall_clock_ms()
    drift_ms = _parse_time(drift_start, "--drift-start") if drift_start else None
    if drift_after is not None:
        drift_ms = start_ms + int(drift_after * 1000)
    # Generated a chunk at a time: an hour at 1000 trips/s would not fit in memory at once.
    trips = stream_trips(n, seed, start_ms, int(duration * 1000), _drift(drift_ms, drift_slowdown))
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("drop-offs {task.fields[labels]}"),
        TimeRemainingColumn(),
        disable=not interactive(),
    ) as progress:
        task = progress.add_task(f"trips -> {settings.topics.trips}", total=n, labels=0)

        def show(stats: ProduceStats) -> None:
            progress.update(task, completed=stats.events, labels=stats.labels)

        stats = produce_live(settings, trips, rate=rate, time_scale=time_scale, on_progress=show)
    typer.echo(
        f"produced {stats.events} pick-ups to {settings.topics.trips} and {stats.labels} drop-offs to "
        f"{settings.topics.labels} at {settings.bootstrap_servers}"
    )


def register(app: typer.Typer) -> None:
    """Add ``generate`` and ``produce``."""
    app.command("generate")(generate)
    app.command("produce")(produce)
