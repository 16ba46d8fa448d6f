"""The synthetic trip generator: deterministic, and shaped like a city's taxi trips."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from edml.trainer.datafiles import DataFileError, read_examples, write_examples
from edml.trainer.generator import DAY_MS, DEFAULT_START_MS, HOUR_MS, Drift, generate_columns, generate_trips
from edml.trainer.records import TripDropoff, TripPickup, dropoff_serde, trip_serde
from edml.trainer.zones import BOROUGHS, EWR, JFK, LGA, VALID_ZONE_IDS, ZONES

N = 20_000


@pytest.fixture(scope="module")
def trips():  # noqa: ANN201
    return generate_columns(N, seed=11)


def _hours(ms: np.ndarray) -> np.ndarray:
    return (ms % DAY_MS) // HOUR_MS


def _weekday(ms: np.ndarray) -> np.ndarray:
    return (ms // DAY_MS + 3) % 7


def test_same_seed_same_trips_other_seed_other_trips() -> None:
    a, b, c = generate_trips(500, seed=3), generate_trips(500, seed=3), generate_trips(500, seed=4)
    assert a == b
    assert a != c
    assert {t.pickup.trip_id for t in a}.isdisjoint({t.pickup.trip_id for t in c})


def test_same_seed_same_file_bytes(tmp_path: Path) -> None:
    paths = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        paths.append(write_examples(tmp_path / f"{name}.avro", generate_columns(2_000, seed=seed), seed=seed))
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b
    assert a != c


def test_file_round_trip_keeps_every_field(tmp_path: Path) -> None:
    cols = generate_columns(300, seed=8)
    back = read_examples(write_examples(tmp_path / "t.avro", cols, seed=8))
    assert back.trips() == cols.trips()


def test_records_are_valid_trip_records_that_the_serde_round_trips() -> None:
    for pickup, dropoff in generate_trips(200, seed=1):
        assert isinstance(pickup, TripPickup) and isinstance(dropoff, TripDropoff)
        assert trip_serde().decode(trip_serde().encode(pickup)) == pickup
        assert dropoff_serde().decode(dropoff_serde().encode(dropoff)) == dropoff
        assert dropoff.trip_id == pickup.trip_id
        assert dropoff.dropoff_time == pickup.pickup_time + round(dropoff.duration_s * 1000)


def test_zone_map_has_265_zones_the_airports_and_five_boroughs() -> None:
    assert VALID_ZONE_IDS == set(range(1, 266))
    assert ZONES[EWR].borough == "EWR" and ZONES[JFK].borough == "Queens" and ZONES[LGA].borough == "Queens"
    assert {z.id for z in ZONES.values() if z.is_airport} == {EWR, JFK, LGA}
    assert {z.borough for z in ZONES.values()} == set(BOROUGHS)
    for z in ZONES.values():  # inside a box around New York City
        assert 40.45 < z.lat < 40.95 and -74.3 < z.lon < -73.65


def test_fields_are_in_range(trips) -> None:  # noqa: ANN001
    assert set(np.unique(trips.pickup_zone)) <= VALID_ZONE_IDS
    assert set(np.unique(trips.dropoff_zone)) <= VALID_ZONE_IDS
    assert set(np.unique(trips.passenger_count)) == {1, 2, 3, 4, 5, 6}
    assert all(ZONES[int(z)].borough == b for z, b in zip(trips.pickup_zone, trips.pickup_borough, strict=True))
    assert (trips.trip_distance_km > 0).all() and (trips.duration_s >= 60).all()
    assert len(set(trips.trip_id)) == N
    assert (np.diff(trips.pickup_time) >= 0).all(), "sorted by pick-up time"
    assert trips.pickup_time.min() >= DEFAULT_START_MS and trips.pickup_time.max() < DEFAULT_START_MS + 28 * DAY_MS


def test_span_days_bounds_pickup_times() -> None:
    cols = generate_columns(1_000, seed=2, start_ms=DEFAULT_START_MS, span_days=0.5)
    assert cols.pickup_time.min() >= DEFAULT_START_MS and cols.pickup_time.max() < DEFAULT_START_MS + DAY_MS // 2


def test_demand_follows_the_hour_of_day(trips) -> None:  # noqa: ANN001
    weekday = _weekday(trips.pickup_time) < 5
    per_hour = np.bincount(_hours(trips.pickup_time[weekday]), minlength=24)
    assert per_hour[18] > 3 * per_hour[4], "evening peak busier than 4 am"


def test_airport_trips_take_longer(trips) -> None:  # noqa: ANN001
    airport = np.isin(trips.pickup_zone, [EWR, JFK, LGA]) | np.isin(trips.dropoff_zone, [EWR, JFK, LGA])
    assert np.median(trips.duration_s[airport]) > 1.5 * np.median(trips.duration_s[~airport])


def test_rush_hour_is_slower_than_night(trips) -> None:  # noqa: ANN001
    pace = trips.duration_s / trips.trip_distance_km  # seconds per km
    hour, weekday = _hours(trips.pickup_time), _weekday(trips.pickup_time) < 5
    rush = weekday & np.isin(hour, [8, 17])
    night = weekday & np.isin(hour, [1, 2, 3])
    assert np.median(pace[rush]) > 1.4 * np.median(pace[night])


def test_manhattan_is_slower_than_staten_island(trips) -> None:  # noqa: ANN001
    pace = trips.duration_s / trips.trip_distance_km
    borough = np.asarray(trips.pickup_borough)
    assert np.median(pace[borough == "Manhattan"]) > 1.3 * np.median(pace[borough == "Staten Island"])


def test_durations_have_a_heavy_tail(trips) -> None:  # noqa: ANN001
    pace = trips.duration_s / trips.trip_distance_km
    assert np.quantile(pace, 0.999) > 3 * np.median(pace)


def test_drift_slows_trips_from_its_start_only() -> None:
    start = DEFAULT_START_MS + 14 * DAY_MS
    base = generate_columns(5_000, seed=9)
    slow = generate_columns(5_000, seed=9, drift=Drift(start_ms=start, slowdown=0.5))
    before, after = base.pickup_time < start, base.pickup_time >= start
    np.testing.assert_array_equal(base.duration_s[before], slow.duration_s[before])
    ratio = np.median(slow.duration_s[after] / base.duration_s[after])
    assert 1.3 < ratio < 1.5  # travel time x1.5, fixed overheads unchanged
    assert base.trip_id == slow.trip_id


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="nope.avro.*does not exist"):
        read_examples(tmp_path / "nope.avro")


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not avro at all", b"Obj\x01garbage"],
    ids=["empty", "text", "bad-header"],
)
def test_corrupt_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.avro"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match="bad.avro"):
        read_examples(path)


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    path = write_examples(tmp_path / "t.avro", generate_columns(3_000, seed=1))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataFileError, match="t.avro.*corrupt"):
        read_examples(path)


def test_avro_file_of_other_records_is_a_clear_error(tmp_path: Path) -> None:
    import fastavro

    path = tmp_path / "other.avro"
    schema = {"type": "record", "name": "X", "fields": [{"name": "a", "type": "int"}]}
    with path.open("wb") as f:
        fastavro.writer(f, schema, [{"a": 1}])
    with pytest.raises(DataFileError, match="other.avro.*not TripExample.*trip_id"):
        read_examples(path)


def test_wall_clock_encoding() -> None:
    from edml.trainer.generator import wall_clock_ms

    # 08:00 in New York in January is 13:00 UTC; the encoding keeps the wall-clock reading 08:00.
    aware = datetime(2024, 1, 15, 13, 0, tzinfo=UTC)
    assert wall_clock_ms(aware) == int(datetime(2024, 1, 15, 8, 0, tzinfo=UTC).timestamp() * 1000)
    assert wall_clock_ms(datetime(2024, 1, 15, 8, 0)) == wall_clock_ms(aware)


def test_streamed_trips_are_deterministic_sorted_and_cover_the_span() -> None:
    from edml.trainer.generator import stream_trips

    hour = 3_600_000
    one_chunk = list(stream_trips(400, 3, DEFAULT_START_MS, hour))
    assert one_chunk == generate_trips(400, 3, DEFAULT_START_MS, span_days=hour / DAY_MS)
    chunked = list(stream_trips(1_000, 3, DEFAULT_START_MS, hour, chunk=300))
    assert chunked == list(stream_trips(1_000, 3, DEFAULT_START_MS, hour, chunk=300))
    times = [t.pickup.pickup_time for t in chunked]
    assert len(chunked) == len({t.pickup.trip_id for t in chunked}) == 1_000
    assert times == sorted(times) and DEFAULT_START_MS <= times[0] and times[-1] < DEFAULT_START_MS + hour
    assert times[-1] - times[0] > 0.9 * hour
