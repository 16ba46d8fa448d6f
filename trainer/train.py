"""Train a trip-duration model on a data file, evaluate it against two baselines, export it.

Which model is a :class:`~edml.trainer.kinds.ModelKind`: the full wide & deep model (the default),
the airport model (the same, on airport trips only) or the basic fallback (distance and time only).

Output folder (what the publisher packages and the scorer loads)::

    saved_model/          the SavedModel, signature ``serving_default`` on the raw TripPickup fields it reads
    metrics.json          MAE/RMSE of the model and of both baselines, sizes, seed, data window
    golden.json           held-out rows and what the exported model returns for them
    reference.json        per-input training distributions for drift checks (see trainer.metrics)
    training_curve.png    loss per epoch, and held-out MAE in seconds per epoch
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edml.trainer.generator import TripColumns, generate_columns
from edml.trainer.kinds import FULL, FULL_INPUTS, ModelKind
from edml.trainer.metrics import baselines, mae, reference_distributions, rmse

TEST_FRACTION = 0.1
MIN_TRIPS = 20
N_GOLDEN = 16
INPUT_FIELDS = FULL_INPUTS


@dataclass(frozen=True)
class TrainMetrics:
    """What ``metrics.json`` holds."""

    mae: float
    rmse: float
    baseline_mean_mae: float
    baseline_distance_mae: float
    baseline_mean_rmse: float
    baseline_distance_rmse: float
    n_train: int
    n_test: int
    epochs: int
    seed: int
    data_window_start: int
    data_window_end: int
    train_seconds: float
    trainer_params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """A finished training run: where its outputs are and how well it did."""

    out_dir: Path
    saved_model_dir: Path
    metrics: TrainMetrics
    history: dict[str, list[float]]


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of one training run."""

    epochs: int = 8
    seed: int = 0
    batch_size: int = 512
    learning_rate: float = 3e-3
    verbose: int | str = 0  # Keras fit verbosity: "auto" shows a progress bar per epoch


def _select(columns: TripColumns, idx: np.ndarray) -> TripColumns:
    return TripColumns(
        trip_id=[columns.trip_id[i] for i in idx],
        pickup_time=columns.pickup_time[idx],
        pickup_zone=columns.pickup_zone[idx],
        dropoff_zone=columns.dropoff_zone[idx],
        pickup_borough=[columns.pickup_borough[i] for i in idx],
        passenger_count=columns.passenger_count[idx],
        trip_distance_km=columns.trip_distance_km[idx],
        dropoff_time=columns.dropoff_time[idx],
        duration_s=columns.duration_s[idx],
    )


def model_inputs(columns: TripColumns, names: tuple[str, ...] = INPUT_FIELDS) -> dict[str, np.ndarray]:
    """The raw input columns ``names`` (by default every model input), in their serving dtypes."""
    every = {
        "pickup_time": lambda: columns.pickup_time.astype(np.int64),
        "pickup_zone": lambda: columns.pickup_zone.astype(np.int64),
        "dropoff_zone": lambda: columns.dropoff_zone.astype(np.int64),
        "pickup_borough": lambda: np.asarray(columns.pickup_borough, dtype=object),
        "passenger_count": lambda: columns.passenger_count.astype(np.int64),
        "trip_distance_km": lambda: columns.trip_distance_km.astype(np.float32),
    }
    return {name: every[name]() for name in names}


def kind_rows(columns: TripColumns, kind: ModelKind) -> TripColumns:
    """The trips of ``columns`` that ``kind`` trains on (all of them but for the airport model)."""
    return columns if not kind.airport_only else _select(columns, kind.rows(columns))


def split(columns: TripColumns, seed: int, test_fraction: float = TEST_FRACTION) -> tuple[TripColumns, TripColumns]:
    """A seeded random train/test split."""
    n = len(columns)
    if n < MIN_TRIPS:
        raise ValueError(f"need at least {MIN_TRIPS} trips to train and evaluate, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(2, int(n * test_fraction))
    return _select(columns, np.sort(order[n_test:])), _select(columns, np.sort(order[:n_test]))


def _plot_curve(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, history["loss"], marker="o", label="train")
    if "val_loss" in history:
        ax1.plot(epochs, history["val_loss"], marker="o", label="held-out")
    ax1.set(xlabel="epoch", ylabel="MSE of log(duration)", title="loss")
    ax1.legend()
    ax2.plot(epochs, history.get("test_mae_s", []), marker="o", color="C2")
    ax2.set(xlabel="epoch", ylabel="MAE (s)", title="held-out MAE")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def train_columns(columns: TripColumns, out_dir: Path | str, config: TrainConfig, data_source: str = "",
                  kind: ModelKind = FULL) -> TrainResult:
    """Train model ``kind`` on in-memory trips (those of them it trains on) and write every output into ``out_dir``."""
    import keras
    import tensorflow as tf
    from edml.trainer.model import ModelParams, Normalisation, WideDeep, export_saved_model
    from edml.trainer.predict import predict_rows

    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    train, test = split(kind_rows(columns, kind), config.seed)

    params = ModelParams()
    norm = Normalisation.fit(train.trip_distance_km, train.duration_s)
    model = WideDeep(norm, params, zones=kind.zones)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")

    x_train, x_test = model_inputs(train, kind.inputs), model_inputs(test, kind.inputs)
    y_train = np.log(train.duration_s).astype(np.float32)
    y_test = np.log(test.duration_s).astype(np.float32)
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(y_train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .prefetch(2)
    )
    test_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(8192)
    test_mae_s: list[float] = []

    class HeldOutSeconds(keras.callbacks.Callback):
        """Held-out MAE in seconds after each epoch, for the curve."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            pred = np.concatenate([np.exp(model(x, training=False).numpy()) for x, _ in test_ds])
            test_mae_s.append(mae(test.duration_s, pred))

    fit = model.fit(
        train_ds,
        validation_data=test_ds,
        epochs=config.epochs,
        verbose=config.verbose,
        callbacks=[HeldOutSeconds()],
        shuffle=False,  # the dataset shuffles itself, seeded
    )
    history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    history["test_mae_s"] = test_mae_s

    saved_model_dir = export_saved_model(model, out_dir / "saved_model")
    # Evaluate the exported model itself: the numbers describe exactly what will serve.
    test_pred = predict_rows(saved_model_dir, x_test)
    base = baselines(train.trip_distance_km, train.duration_s, test.trip_distance_km, test.duration_s)
    metrics = TrainMetrics(
        mae=mae(test.duration_s, test_pred),
        rmse=rmse(test.duration_s, test_pred),
        baseline_mean_mae=base.mean_mae,
        baseline_distance_mae=base.distance_mae,
        baseline_mean_rmse=base.mean_rmse,
        baseline_distance_rmse=base.distance_rmse,
        n_train=len(train),
        n_test=len(test),
        epochs=config.epochs,
        seed=config.seed,
        data_window_start=int(columns.pickup_time.min()),
        data_window_end=int(columns.pickup_time.max()),
        train_seconds=round(time.monotonic() - started, 2),
        trainer_params={
            "model": "wide_and_deep" if kind.zones else "wide_and_deep_distance_time",
            "kind": kind.name,
            "trips": kind.trips,
            "target": "log(duration_s)",
            "batch_size": str(config.batch_size),
            "learning_rate": str(config.learning_rate),
            "zone_dim": str(params.zone_dim),
            "hidden": ",".join(map(str, params.hidden)),
            "test_fraction": str(TEST_FRACTION),
            "data": data_source,
        },
    )

    golden_idx = np.arange(min(N_GOLDEN, len(test)))
    golden_cols = _select(test, golden_idx)
    golden_columns = model_inputs(golden_cols, kind.inputs)
    golden_inputs = {"trip_id": golden_cols.trip_id} | {
        name: [_to_jsonable(v) for v in values.tolist()] for name, values in golden_columns.items()
    }
    golden_out = predict_rows(saved_model_dir, golden_inputs)
    (out_dir / "golden.json").write_text(
        json.dumps({"inputs": golden_inputs, "outputs": [float(v) for v in golden_out]}, indent=1) + "\n"
    )
    (out_dir / "metrics.json").write_text(json.dumps(asdict(metrics), indent=2) + "\n")
    (out_dir / "reference.json").write_text(json.dumps(reference_distributions(train, kind.inputs), indent=1) + "\n")
    _plot_curve(history, out_dir / "training_curve.png")
    return TrainResult(out_dir, saved_model_dir, metrics, history)


def train_model(
    data_path: Path | str,
    out_dir: Path | str,
    epochs: int = 8,
    seed: int = 0,
    max_rows: int | None = None,
    verbose: int | str = 0,
    kind: ModelKind = FULL,
) -> TrainResult:
    """Train ``kind`` on the TripExample file ``data_path``; DataFileError for a missing or corrupt file,
    or one with too few of the trips ``kind`` trains on."""
    from edml.trainer.datafiles import DataFileError, read_examples

    columns = read_examples(data_path, max_rows=max_rows)
    usable = len(kind.rows(columns))
    if usable < MIN_TRIPS:
        which = "trips" if not kind.airport_only else f"trips of which {usable} are airport trips"
        raise DataFileError(f"data file {data_path} holds {len(columns)} {which}; training the {kind.name} model "
                            f"needs at least {MIN_TRIPS}")
    config = TrainConfig(epochs=epochs, seed=seed, verbose=verbose)
    return train_columns(columns, out_dir, config, data_source=os.fspath(data_path), kind=kind)


def train_small(out_dir: Path | str, seed: int = 0, n: int = 20_000, epochs: int = 6,
                kind: ModelKind = FULL) -> TrainResult:
    """A small, quick model (``n`` generated trips, seeded; the airport model keeps their airport trips)."""
    columns = generate_columns(n, seed=seed)
    return train_columns(
        columns, out_dir, TrainConfig(epochs=epochs, seed=seed), data_source=f"generated:n={n},seed={seed}", kind=kind
    )
