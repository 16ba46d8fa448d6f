"""Reference distributions, binning and the population stability index."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from edml.evaluation.drift import (
    BadReference,
    DriftAccumulator,
    DriftFeatures,
    Observation,
    References,
    alert_for,
    load_reference,
    numeric_reference,
    parse_reference,
    psi,
    readings,
)
from edml.trainer.generator import DEFAULT_START_MS, Drift, generate_columns
from edml.trainer.metrics import reference_distributions
from edml.trainer.records import TripDropoff, TripPickup

# the taxi pipeline's drift features: its model inputs, the hour of the pick-up time, the duration label
TAXI = DriftFeatures({f: f for f in ("pickup_zone", "dropoff_zone", "pickup_borough", "passenger_count",
                                     "trip_distance_km")}, "pickup_time", "pickup_hour", "duration_s")

DAY = 86_400_000


def test_psi_of_identical_distributions_is_zero_and_grows_with_the_shift() -> None:
    e = [0.25, 0.25, 0.25, 0.25]
    assert psi(e, e) == 0.0
    small, large = psi(e, [0.3, 0.25, 0.25, 0.2]), psi(e, [0.7, 0.1, 0.1, 0.1])
    assert 0 < small < 0.1 < 0.25 < large
    # a textbook value: sum (a - e) ln(a / e)
    assert math.isclose(psi([0.5, 0.5], [0.6, 0.4]), 0.1 * math.log(1.2) - 0.1 * math.log(0.8))


def test_empty_bins_count_as_a_large_but_finite_difference() -> None:
    value = psi([0.5, 0.5], [1.0, 0.0])
    assert math.isfinite(value) and value > 1.0


def test_numeric_bins_follow_the_trainer_convention() -> None:
    ref = parse_reference({"trip_distance_km": {"kind": "numeric", "edges": [1.0, 3.0], "fractions": [.2, .5, .3]}},
                          "test").features["trip_distance_km"]
    # bin i holds edges[i-1] < x <= edges[i], outer bins open
    assert [ref.bin_of(x) for x in (-5, 1.0, 1.01, 3.0, 3.5, 1e9)] == [0, 0, 1, 1, 2, 2]
    assert ref.labels == ("<=1", "(1,3]", ">3")


def test_outer_edges_are_accepted_too() -> None:
    ref = parse_reference({"trip_distance_km": {"kind": "numeric", "edges": [0, 2, 5, 50], "fractions": [.4, .4, .2]}},
                          "t").features["trip_distance_km"]
    assert [ref.bin_of(x) for x in (0.5, 4, 80)] == [0, 1, 2]


def test_categorical_other_takes_unlisted_values() -> None:
    ref = parse_reference(
        {"pickup_zone": {"kind": "categorical", "values": [132, 161, "other"], "fractions": [.3, .3, .4]},
         "pickup_borough": {"kind": "categorical", "fractions": {"Manhattan": 0.8, "Queens": 0.2}}}, "t",
    )
    zone, borough = ref.features["pickup_zone"], ref.features["pickup_borough"]
    assert [zone.bin_of(v) for v in (132, 161, 7)] == [0, 1, 2]
    # without an "other" value an unlisted category gets a bin of its own, expected 0
    assert borough.bins == 3 and borough.bin_of("Bronx") is None


@pytest.mark.parametrize(
    "data, reason",
    [
        ({"trip_distance_km": {"kind": "numeric", "edges": [1, 2], "fractions": [.5, .3, .1, .1]}}, "fractions"),
        ({"trip_distance_km": {"kind": "numeric", "edges": [2, 1], "fractions": [.3, .3, .4]}}, "increase"),
        ({"pickup_zone": {"kind": "categorical", "values": [1, 2], "fractions": [.5, .2]}}, "sum to 1"),
        ({"pickup_zone": {"kind": "histogram"}}, "kind"),
        ({"unknown_feature": {"kind": "numeric"}}, "no known feature"),
        ([1, 2], "JSON object"),
    ],
)
def test_malformed_references_are_refused_with_a_reason(data: object, reason: str) -> None:
    with pytest.raises(BadReference, match=reason):
        parse_reference(data, "t", TAXI.names)


def test_reference_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(BadReference, match="does not exist"):
        load_reference(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(BadReference, match="not readable JSON"):
        load_reference(tmp_path / "bad.json")


def test_pickup_hour_is_only_compared_on_whole_days() -> None:
    ref = parse_reference(reference_distributions(generate_columns(2000, seed=3)), "t", TAXI.names)
    assert "pickup_hour" in ref.for_window(DAY, TAXI.seasonal).features
    assert "pickup_hour" in ref.for_window(2 * DAY, TAXI.seasonal).features
    assert "pickup_hour" not in ref.for_window(6 * 3_600_000, TAXI.seasonal).features
    assert "pickup_zone" in ref.for_window(6 * 3_600_000, TAXI.seasonal).features


def test_only_the_pipelines_features_are_read_from_a_reference() -> None:
    data = {"pickup_zone": {"kind": "categorical", "fractions": {"1": 1.0}},
            "temperature": {"kind": "numeric", "edges": [0.0], "fractions": [0.5, 0.5]}}
    assert set(parse_reference(data, "t", {"temperature", "humidity"}).features) == {"temperature"}
    assert set(parse_reference(data, "t").features) == {"pickup_zone", "temperature"}


def _window_psi(reference: dict, trips: list[tuple[TripPickup, TripDropoff]]) -> dict[str, float | None]:
    ref = parse_reference(reference, "t", TAXI.names).for_window(DAY, TAXI.seasonal)
    acc = DriftAccumulator(ref)
    inputs, target = acc.empty(), acc.empty()
    for pickup, dropoff in trips:
        acc.add(inputs, TAXI.of_event(dataclasses.asdict(pickup), pickup.pickup_time))
        acc.add(target, TAXI.of_label(dataclasses.asdict(dropoff), dropoff.dropoff_time))
    emit = readings(ref, min_per_bin=10)
    return {r.feature: r.psi for r in emit(0, DAY, inputs, 0) + emit(0, DAY, target, 0)}


def _reference(seed: int) -> dict:
    cols = generate_columns(20_000, seed=seed)
    return reference_distributions(cols) | {"duration_s": numeric_reference(cols.duration_s)}


def test_a_day_of_undrifted_traffic_stays_below_the_threshold() -> None:
    day = generate_columns(2000, seed=11, span_days=1).trips()
    values = _window_psi(_reference(1), day)
    assert set(values) >= {"pickup_zone", "trip_distance_km", "pickup_hour", "duration_s"}
    assert all(v is not None and v < 0.1 for v in values.values()), values


def test_slower_traffic_moves_the_duration_not_the_inputs() -> None:
    drift = Drift(DEFAULT_START_MS, slowdown=1.0)
    day = generate_columns(2000, seed=11, span_days=1, drift=drift).trips()
    values = _window_psi(_reference(1), day)
    assert values["duration_s"] > 0.25
    assert values["trip_distance_km"] < 0.1


def test_too_few_events_give_no_psi_and_no_alert() -> None:
    few = generate_columns(50, seed=11, span_days=1).trips()
    values = _window_psi(_reference(1), few)
    assert values["pickup_zone"] is None  # 31 bins need 310 trips


def test_an_alert_carries_the_window_and_both_distributions() -> None:
    ref = parse_reference({"duration_s": numeric_reference(np.linspace(100, 1000, 500))}, "model v1")
    acc = DriftAccumulator(ref)
    counts = acc.empty()
    for i in range(500):
        acc.add(counts, Observation("target", i, {"duration_s": 2000.0 + i}))  # everything beyond the reference
    [reading] = readings(ref, 10)(0, DAY, counts, 0)
    alert = alert_for(reading, 0.25, ref.source)
    assert alert is not None and alert.psi > 1 and alert.count == 500 and alert.reference == "model v1"
    last = ref.features["duration_s"].labels[-1]
    assert last.startswith(">") and alert.actual[last] == 1.0 and json.dumps(alert.expected)
    assert alert_for(reading, alert.psi + 1, ref.source) is None


def test_after_a_swap_new_windows_are_measured_against_the_new_champions_reference() -> None:
    old = parse_reference({"duration_s": numeric_reference(np.linspace(100, 1000, 500))}, "model v1")
    new = parse_reference({"duration_s": numeric_reference(np.linspace(200, 2000, 500))}, "model v2")
    references = References(old)
    acc, emit = DriftAccumulator(references), readings(references, 10)
    slow = [Observation("target", i, {"duration_s": 200.0 + 3.6 * i}) for i in range(500)]  # like v2's data

    opened_before = acc.empty()
    acc.add(opened_before, slow[0])
    assert references.swap(new) and not references.swap(new)
    opened_after = acc.empty()
    for o in slow[1:]:
        acc.add(opened_before, o)
        acc.add(opened_after, o)
    [before] = emit(0, DAY, opened_before, 0)
    [after] = emit(0, DAY, opened_after, 0)
    # the window opened under v1 keeps v1's bins and is compared with v1: the traffic moved away from it
    assert before.reference == "model v1" and before.psi is not None and before.psi > 0.25
    alert = alert_for(before, 0.25)
    assert alert is not None and alert.reference == "model v1"
    # the window opened after the swap is counted in v2's bins: the traffic is what v2 learned
    assert after.reference == "model v2" and after.psi is not None and after.psi < 0.1
    assert alert_for(after, 0.25) is None


def test_a_window_counted_against_a_reference_no_longer_known_is_counted_again() -> None:
    old = parse_reference({"duration_s": numeric_reference(np.linspace(100, 1000, 500))}, "model v1")
    new = parse_reference({"duration_s": numeric_reference(np.linspace(200, 2000, 500))}, "model v2")
    restored = DriftAccumulator(old).empty()
    DriftAccumulator(old).add(restored, Observation("target", 0, {"duration_s": 500.0}))
    assert restored.reference == "model v1" and restored.count == 1
    after_restart = DriftAccumulator(References(new))  # a process that only knows the new champion
    after_restart.add(restored, Observation("target", 1, {"duration_s": 700.0}))
    assert (restored.reference, restored.count, sum(restored.bins["duration_s"])) == ("model v2", 1, 1)


def test_a_narrowed_view_follows_the_swaps_of_its_references() -> None:
    day = {"pickup_hour": {"kind": "categorical", "fractions": {str(h): 1 / 24 for h in range(24)}},
           "duration_s": numeric_reference(np.linspace(100, 1000, 50))}
    references = References(parse_reference(day, "model v1"))
    view = references.for_window(6 * 3_600_000, TAXI.seasonal)
    assert set(view.current.features) == {"duration_s"} and view.current.source == "model v1"
    assert view.swap(parse_reference(day, "model v2"))
    assert references.current.source == "model v2" and set(view.current.features) == {"duration_s"}
    assert view.get("model v1") is not None and view.get("model v3") is None
