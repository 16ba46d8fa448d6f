"""``edml train``: train one of the taxi pipeline's trip-duration models (the example's trainer) and export it.

``--kind full`` (the default) is the wide & deep model on every trip; ``--kind airport`` the same on
the airport trips only; ``--kind basic`` the fallback on distance and time only (see ``edml.trainer.kinds``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def train(
    data: Annotated[Path, typer.Option("--data", help="TripExample Avro file (from `edml generate`).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: saved_model/, metrics.json, golden.json, ...")],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the training data.")] = 6,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split, the initial weights and the shuffling.")] = 0,
    max_rows: Annotated[int | None, typer.Option("--max-rows", min=20, help="Read at most this many trips.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, even on a terminal.")] = False,
    kind: Annotated[str, typer.Option(
        "--kind", help="Which model: full (every field, every trip; publish as trip-duration), airport (every "
        "field, airport trips only; trip-duration-airport) or basic (distance and time only, no zones: "
        "the fallback, trip-duration-basic).")] = "full",
) -> None:
    """Train a trip-duration model on a data file; report MAE/RMSE beside the baselines and export a SavedModel.

    The default is the taxi pipeline's wide & deep model; --kind airport and --kind basic train the
    taxi-routed pipeline's airport route and fallback.
    """
    from edml.cli.progress import interactive
    from edml.core.errors import OperatorError
    from edml.trainer.datafiles import DataFileError, read_examples
    from edml.trainer.kinds import model_kind
    from edml.trainer.train import MIN_TRIPS, train_model

    try:
        model = model_kind(kind)
    except ValueError as e:
        raise OperatorError(f"--kind: {e}") from None

    # A missing, corrupt or near-empty file fails here, in one line, before TensorFlow loads.
    if len(read_examples(data, max_rows=MIN_TRIPS)) < MIN_TRIPS:
        raise DataFileError(f"data file {data} holds fewer than {MIN_TRIPS} trips; training needs at least {MIN_TRIPS}")

    which = "" if model.name == "full" else f"the {model.name} model ({model.model_name}: {model.trips}) "
    typer.echo(f"training {which}on {data} ({epochs} epochs, seed {seed}) ...")
    # Keras' live bar on a terminal; in CI and logs only the report below
    verbose: int | str = "auto" if interactive(sys.stdout) and not quiet else 0
    result = train_model(data, out, epochs=epochs, seed=seed, max_rows=max_rows, verbose=verbose, kind=model)
    m = result.metrics
    typer.echo(
        f"held-out ({m.n_test} trips):\n"
        f"  model              MAE {m.mae:8.1f} s   RMSE {m.rmse:8.1f} s\n"
        f"  global mean        MAE {m.baseline_mean_mae:8.1f} s   RMSE {m.baseline_mean_rmse:8.1f} s\n"
        f"  distance (linear)  MAE {m.baseline_distance_mae:8.1f} s   RMSE {m.baseline_distance_rmse:8.1f} s\n"
        f"trained on {m.n_train} trips in {m.train_seconds:.1f} s; wrote {out}/saved_model, metrics.json, "
        f"golden.json, reference.json, training_curve.png"
    )
    if model.name != "full":  # the default model publishes under the pipeline's own model name
        typer.echo(f"publish it with: edml publish --pipeline taxi-routed --model-dir {out} --name {model.model_name}")


def register(app: typer.Typer) -> None:
    """Add ``train``."""
    app.command("train")(train)
