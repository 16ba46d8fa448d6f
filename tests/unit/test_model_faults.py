"""Model faults are isolated to their rows, and one output check serves the gate, warm-up and scoring."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from edml.model_topic.artifact import pack_folder, read_model_folder, sha256_hex
from edml.model_topic.gate import check_output, output_problems
from edml.model_topic.publisher import record_from_manifest
from edml.schemas.validation import TripColumns
from edml.trainer.generator import generate_trips

from bench.per_event import call_per_event
from edml.scoring.batch import FailureWindow, FaultPolicy, score_rows
from edml.scoring.loader import ModelRejected, load_model
from edml.scoring.serving import LoadedModel
from tests.helpers.savedmodels import FIXED_16, GOOD, NAN_CROWDED, RAISES_FAR, TWO_COLUMNS, write_model_dir


def loaded(tmp_path: Path, kind: str) -> LoadedModel:
    """``kind`` of tiny model, through the scorer's own loader (verify, unpack, load, warm up)."""
    folder = write_model_dir(tmp_path / kind, kind=kind)
    manifest = dataclasses.replace(read_model_folder(folder, "trip-duration", "base"), version=kind)
    data = pack_folder(folder / "saved_model", manifest)
    record = record_from_manifest(manifest, f"file:///unused/{kind}.tar.gz", sha256_hex(data), len(data))
    return load_model(record, data, tmp_path / "unpacked")


@pytest.fixture(scope="module")
def trips() -> TripColumns:
    return TripColumns.from_trips([g.pickup for g in generate_trips(600, seed=9)])


def test_check_output_accepts_one_float_per_row_only() -> None:
    assert check_output(np.ones(4, np.float32), 4).problem is None
    assert check_output({"y": np.ones((4, 1))}, 4).values.shape == (4,)
    assert "shape [4, 2]" in check_output(np.ones((4, 2)), 4).problem
    assert "shape [16]" in check_output(np.ones(16), 4).problem
    assert "int64" in check_output(np.ones(4, np.int64), 4).problem
    assert "2 outputs" in check_output({"a": np.ones(4), "b": np.ones(4)}, 4).problem
    nan = check_output(np.array([1.0, np.nan, np.inf, 2.0]), 4)
    assert nan.nonfinite.tolist() == [1, 2]
    assert output_problems(nan) == ["the model returned 2 non-finite (NaN/inf) outputs for 4 rows"]


def test_failing_rows_are_isolated_by_halving(tmp_path: Path, trips: TripColumns) -> None:
    good_model = loaded(tmp_path, GOOD)
    good = score_rows(good_model, "champion", trips.as_dict(), len(trips))
    assert good.ok.all() and good.calls == 1 and not good.failures
    few = {k: v[:40] for k, v in trips.as_dict().items()}
    per_event = score_rows(good_model, "champion", few, 40, call=call_per_event)  # the benchmark's variant
    assert per_event.ok.all() and np.array_equal(per_event.values, good.values[:40])

    raises = score_rows(loaded(tmp_path, RAISES_FAR), "champion", trips.as_dict(), len(trips))
    far = np.flatnonzero(trips.trip_distance_km >= 20.0)
    failed = sorted(i for f in raises.failures for i in f.rows.tolist())
    print(f"[halving] raises-far: {len(far)} far trips of {len(trips)}, {len(failed)} failed rows, "
          f"{raises.calls} model calls")
    assert 0 < len(far) < len(trips) and failed == far.tolist()
    assert {f.kind for f in raises.failures} == {"model-error"}
    assert "assertion failed: [distance out of the model" in raises.failures[0].reason, raises.failures[0].reason
    assert np.array_equal(raises.values[raises.ok], good.values[raises.ok])

    crowded = score_rows(loaded(tmp_path, NAN_CROWDED), "champion", trips.as_dict(), len(trips))
    bad = np.flatnonzero(trips.passenger_count >= 4)
    assert crowded.calls == 1 and np.flatnonzero(~crowded.ok).tolist() == bad.tolist()
    assert {f.kind for f in crowded.failures} == {"model-output"}

    fixed = score_rows(loaded(tmp_path, FIXED_16), "champion", trips.as_dict(), len(trips))
    print(f"[halving] fixed-16: {int(fixed.ok.sum())} of {len(trips)} scored in {fixed.calls} calls")
    assert fixed.ok.all() and np.array_equal(fixed.values, good.values)


def test_warm_up_refuses_what_the_gate_refuses(tmp_path: Path) -> None:
    with pytest.raises(ModelRejected, match=r"shape \[16, 2\]"):
        loaded(tmp_path, TWO_COLUMNS)
    assert not list((tmp_path / "unpacked" / "trip-duration").glob(TWO_COLUMNS)), "rejected files are removed"


def test_failure_window_passes_the_rate_only_over_a_window() -> None:
    window = FailureWindow(FaultPolicy(rate=0.05, window_rows=100))
    assert not any(window.add(10, 0) for _ in range(20))
    assert not window.add(10, 5)  # 5 of the last 100
    assert window.add(10, 1)  # 6 of the last 100
    spread = FailureWindow(FaultPolicy(rate=0.05, window_rows=100))
    assert not any(spread.add(100, 4) for _ in range(50)), "4% forever never passes 5%"
