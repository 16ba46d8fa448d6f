"""Training data files: Avro container files of ``TripExample`` records (trainer/avro).

Writing is byte-for-byte deterministic: the container's sync marker is derived from the seed
instead of drawn at random, so the same seed gives the same file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import fastavro
import numpy as np
from edml.trainer.generator import TripColumns

from edml.core.errors import OperatorError

SCHEMA_PATH = Path(__file__).parent / "avro" / "TripExample.avsc"
FIELDS = (
    "trip_id",
    "pickup_time",
    "pickup_zone",
    "dropoff_zone",
    "pickup_borough",
    "passenger_count",
    "trip_distance_km",
    "dropoff_time",
    "duration_s",
)


class DataFileError(OperatorError):
    """A training data file that is missing, unreadable or not TripExample records."""


def example_schema() -> dict[str, Any]:
    """The parsed TripExample schema."""
    return cast(dict[str, Any], fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text())))


def _rows(columns: TripColumns) -> Iterator[dict[str, Any]]:
    for i in range(len(columns)):
        yield {
            "trip_id": columns.trip_id[i],
            "pickup_time": int(columns.pickup_time[i]),
            "pickup_zone": int(columns.pickup_zone[i]),
            "dropoff_zone": int(columns.dropoff_zone[i]),
            "pickup_borough": columns.pickup_borough[i],
            "passenger_count": int(columns.passenger_count[i]),
            "trip_distance_km": float(columns.trip_distance_km[i]),
            "dropoff_time": int(columns.dropoff_time[i]),
            "duration_s": float(columns.duration_s[i]),
        }


def write_examples(
    path: Path, columns: TripColumns, seed: int = 0, on_progress: Callable[[int], None] | None = None
) -> Path:
    """Write ``columns`` to an Avro container file (deflate); the same inputs give the same bytes.

    ``on_progress(rows)`` is called with the rows written so far, every 10,000 rows and at the end.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sync_marker = hashlib.sha256(f"edml-trips-{seed}".encode()).digest()[:16]
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("wb") as f:
        rows = _rows(columns) if on_progress is None else _counted(_rows(columns), on_progress)
        fastavro.writer(f, example_schema(), rows, codec="deflate", sync_marker=sync_marker)
    tmp.replace(path)  # readers never see a half-written file
    return path


def _counted(
    rows: Iterator[dict[str, Any]], on_progress: Callable[[int], None], every: int = 10_000
) -> Iterator[dict[str, Any]]:
    n = 0
    for n, row in enumerate(rows, start=1):
        if n % every == 0:
            on_progress(n)
        yield row
    on_progress(n)


def read_examples(path: Path | str, max_rows: int | None = None) -> TripColumns:
    """Read a TripExample file into columns; raises :class:`DataFileError` naming the file if it is bad."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"data file {path} does not exist (generate one with `edml generate --out {path}`)")
    cols: dict[str, list[Any]] = {name: [] for name in FIELDS}
    try:
        with path.open("rb") as f:
            reader = fastavro.reader(f)
            writer_schema = cast(dict[str, Any], reader.writer_schema)
            names = {fld["name"] for fld in writer_schema.get("fields", [])}
            missing = [name for name in FIELDS if name not in names]
            if missing:
                raise DataFileError(f"data file {path} is not TripExample records: missing fields {', '.join(missing)}")
            for i, rec in enumerate(reader):
                if max_rows is not None and i >= max_rows:
                    break
                record = cast(dict[str, Any], rec)
                for name in FIELDS:
                    cols[name].append(record[name])
    except DataFileError:
        raise
    except Exception as e:  # fastavro raises assorted errors on a corrupt file; all mean "bad file"
        raise DataFileError(
            f"data file {path} is corrupt or not an Avro container file ({type(e).__name__}: {e})"
        ) from None
    if not cols["trip_id"]:
        raise DataFileError(f"data file {path} holds no trips")
    return TripColumns(
        trip_id=cols["trip_id"],
        pickup_time=np.asarray(cols["pickup_time"], dtype=np.int64),
        pickup_zone=np.asarray(cols["pickup_zone"], dtype=np.int64),
        dropoff_zone=np.asarray(cols["dropoff_zone"], dtype=np.int64),
        pickup_borough=cols["pickup_borough"],
        passenger_count=np.asarray(cols["passenger_count"], dtype=np.int64),
        trip_distance_km=np.asarray(cols["trip_distance_km"], dtype=np.float64),
        dropoff_time=np.asarray(cols["dropoff_time"], dtype=np.int64),
        duration_s=np.asarray(cols["duration_s"], dtype=np.float64),
    )
