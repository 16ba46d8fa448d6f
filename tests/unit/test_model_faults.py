"""Model faults are isolated to their rows, and one output check serves the gate, warm-up and scoring."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from edml.model_topic.artifact import pack_folder, read_model_folder, sha256_hex
from edml.model_topic.gate import check_outputs, output_problems
from edml.model_topic.publisher import record_from_manifest
from edml.schemas.records import TensorSpec
from edml.trainer.generator import generate_columns

from bench.per_event import call_per_event
from edml.core.config import Settings
from edml.pipelines.bound import open_pipeline
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
    return load_model(record, data, tmp_path / "unpacked", open_pipeline(None, Settings()))


class Trips:
    """Generated trips as the scorer's columns (field -> array)."""

    def __init__(self, n: int, seed: int) -> None:
        cols = generate_columns(n, seed)
        names = ("trip_id", "pickup_time", "pickup_zone", "dropoff_zone", "pickup_borough", "passenger_count",
                 "trip_distance_km")
        self.columns = {k: np.asarray(getattr(cols, k), dtype=object if k in ("trip_id", "pickup_borough") else None)
                        for k in names}

    def __len__(self) -> int:
        return len(self.columns["trip_id"])

    def as_dict(self) -> dict[str, np.ndarray]:
        return self.columns

    def __getattr__(self, name: str) -> np.ndarray:
        return self.__dict__["columns"][name]


@pytest.fixture(scope="module")
def trips() -> Trips:
    return Trips(600, seed=9)


Y = [TensorSpec("y", "float32", [-1])]


def test_check_outputs_accepts_what_the_signature_declares_only() -> None:
    assert check_outputs(np.ones(4, np.float32), 4, Y).problem is None
    assert check_outputs({"y": np.ones((4, 1))}, 4, Y).values["y"].shape == (4,)
    assert "shape [4, 2]" in check_outputs(np.ones((4, 2)), 4, Y).problem
    assert "shape [16]" in check_outputs(np.ones(16), 4, Y).problem
    assert "int64" in check_outputs(np.ones(4, np.int64), 4, Y).problem
    assert "no output y" in check_outputs({"a": np.ones(4), "b": np.ones(4)}, 4, Y).problem
    two = [TensorSpec("p", "float32", [-1]), TensorSpec("v", "float32", [-1, 3]), TensorSpec("label", "string", [-1])]
    both = check_outputs({"p": np.ones(4), "v": np.ones((4, 3)), "label": np.array([b"a"] * 4)}, 4, two)
    assert both.problem is None and both.values["v"].shape == (4, 3) and both.values["label"].tolist() == ["a"] * 4
    assert "shape [4, 2]" in check_outputs({"p": np.ones(4), "v": np.ones((4, 2)), "label": np.array([b"a"] * 4)},
                                           4, two).problem
    nan = check_outputs(np.array([1.0, np.nan, np.inf, 2.0]), 4, Y)
    assert nan.nonfinite.tolist() == [1, 2]
    assert output_problems(nan) == ["the model returned non-finite (NaN/inf) outputs for 2 of 4 rows"]


def test_failing_rows_are_isolated_by_halving(tmp_path: Path, trips: Trips) -> None:
    good_model = loaded(tmp_path, GOOD)
    good = score_rows(good_model, "champion", trips.as_dict(), len(trips))
    assert good.ok.all() and good.calls == 1 and not good.failures
    few = {k: v[:40] for k, v in trips.as_dict().items()}
    per_event = score_rows(good_model, "champion", few, 40, call=call_per_event)  # the benchmark's variant
    assert per_event.ok.all() and np.array_equal(per_event.values["duration_s"], good.values["duration_s"][:40])

    raises = score_rows(loaded(tmp_path, RAISES_FAR), "champion", trips.as_dict(), len(trips))
    far = np.flatnonzero(trips.trip_distance_km >= 20.0)
    failed = sorted(i for f in raises.failures for i in f.rows.tolist())
    print(f"[halving] raises-far: {len(far)} far trips of {len(trips)}, {len(failed)} failed rows, "
          f"{raises.calls} model calls")
    assert 0 < len(far) < len(trips) and failed == far.tolist()
    assert {f.kind for f in raises.failures} == {"model-error"}
    assert "assertion failed: [distance out of the model" in raises.failures[0].reason, raises.failures[0].reason
    assert np.array_equal(raises.values["duration_s"][raises.ok], good.values["duration_s"][raises.ok])

    crowded = score_rows(loaded(tmp_path, NAN_CROWDED), "champion", trips.as_dict(), len(trips))
    bad = np.flatnonzero(trips.passenger_count >= 4)
    assert crowded.calls == 1 and np.flatnonzero(~crowded.ok).tolist() == bad.tolist()
    assert {f.kind for f in crowded.failures} == {"model-output"}

    fixed = score_rows(loaded(tmp_path, FIXED_16), "champion", trips.as_dict(), len(trips))
    print(f"[halving] fixed-16: {int(fixed.ok.sum())} of {len(trips)} scored in {fixed.calls} calls")
    assert fixed.ok.all() and np.array_equal(fixed.values["duration_s"], good.values["duration_s"])


def test_warm_up_refuses_what_the_gate_refuses(tmp_path: Path) -> None:
    with pytest.raises(ModelRejected, match=r"golden output duration_s has shape \[3\], the model gives \[3, 2\]"):
        loaded(tmp_path, TWO_COLUMNS)
    assert not list((tmp_path / "unpacked" / "trip-duration").glob(TWO_COLUMNS)), "rejected files are removed"


def test_failure_window_passes_the_rate_only_over_a_window() -> None:
    window = FailureWindow(FaultPolicy(rate=0.05, window_rows=100))
    assert not any(window.add(10, 0) for _ in range(20))
    assert not window.add(10, 5)  # 5 of the last 100
    assert window.add(10, 1)  # 6 of the last 100
    spread = FailureWindow(FaultPolicy(rate=0.05, window_rows=100))
    assert not any(spread.add(100, 4) for _ in range(50)), "4% forever never passes 5%"
