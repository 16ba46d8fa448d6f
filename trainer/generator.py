"""A deterministic generator of NYC-like taxi trips.

What it models (all of it seeded, vectorised with numpy):

* **When**: pick-up times over ``span_days`` from ``start_ms`` (the city's wall clock: ``local-timestamp-millis``),
  thinned by an hour-of-day x day-of-week demand curve (morning and evening peaks on weekdays,
  late nights on weekends).
* **Where**: pick-up zones by popularity (Manhattan and the airports busiest); drop-off zones by
  a gravity model (popular and near zones likelier, airports a frequent destination).
* **How far**: centroid-to-centroid distance with a jitter of each end inside its zone and a
  street-grid detour factor.
* **How long**: distance over a speed that depends on the hour, the day and the two boroughs
  (highway trips are faster), plus a fixed overhead, airport terminal time, log-normal noise and
  a heavy (Pareto) tail of delays.
* **Drift**: from ``Drift.start_ms`` every speed is divided by ``1 + slowdown`` (traffic slows),
  so a model trained before that time goes stale.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
from edml.trainer.records import TripDropoff, TripPickup
from edml.trainer.zones import AIRPORTS, BOROUGHS, N_ZONES, haversine_km, zone_arrays

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# 2024-01-01 00:00 (a Monday) on the city's wall clock (local-timestamp-millis).
DEFAULT_START_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)

# Pick-up demand by hour (relative), weekdays and weekends.
_DEMAND_WEEKDAY = np.array(
    [0.35, 0.22, 0.15, 0.11, 0.10, 0.16, 0.35, 0.60, 0.78, 0.80, 0.75, 0.76,
     0.80, 0.80, 0.84, 0.88, 0.88, 0.95, 1.00, 0.98, 0.90, 0.82, 0.72, 0.55]
)  # fmt: skip
_DEMAND_WEEKEND = np.array(
    [0.70, 0.62, 0.50, 0.38, 0.25, 0.15, 0.15, 0.20, 0.30, 0.45, 0.58, 0.66,
     0.72, 0.74, 0.74, 0.74, 0.74, 0.76, 0.80, 0.80, 0.76, 0.74, 0.74, 0.72]
)  # fmt: skip
_DEMAND_DAY = np.array([0.90, 0.95, 1.00, 1.05, 1.12, 1.05, 0.85])  # Monday .. Sunday

# Traffic speed factor by hour (1 = the borough's typical speed): rush hours slow, nights fast.
_SPEED_WEEKDAY = np.array(
    [1.45, 1.50, 1.52, 1.52, 1.45, 1.30, 1.05, 0.78, 0.66, 0.72, 0.85, 0.86,
     0.85, 0.85, 0.80, 0.74, 0.68, 0.64, 0.70, 0.84, 0.96, 1.06, 1.18, 1.32]
)  # fmt: skip
_SPEED_WEEKEND = np.array(
    [1.25, 1.30, 1.38, 1.45, 1.50, 1.50, 1.45, 1.38, 1.25, 1.10, 0.98, 0.92,
     0.88, 0.86, 0.86, 0.86, 0.88, 0.90, 0.92, 0.95, 1.00, 1.05, 1.10, 1.18]
)  # fmt: skip
# Typical speed (km/h) per borough, in BOROUGHS order.
_BOROUGH_SPEED = np.array([13.0, 19.0, 24.0, 21.0, 30.0, 34.0])
_PASSENGERS = np.array([0.70, 0.14, 0.05, 0.03, 0.05, 0.03])  # 1..6


CITY_TZ = "America/New_York"


def wall_clock_ms(when: datetime) -> int:
    """The city's wall-clock reading of ``when`` as Avro ``local-timestamp-millis`` (naive = already wall clock).

    The features (hour of day, day of week) are the city's: carrying its wall clock, not the
    instant, keeps them a plain calendar computation and every reader shows the city's time.
    """
    if when.tzinfo is not None:
        when = when.astimezone(ZoneInfo(CITY_TZ))
    return int(when.replace(tzinfo=UTC).timestamp() * 1000)


def now_wall_clock_ms() -> int:
    """The city's wall clock now, as ``local-timestamp-millis`` (how pickup_time is written)."""
    return wall_clock_ms(datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class Drift:
    """From ``start_ms`` (pick-up time), traffic speeds are divided by ``1 + slowdown``."""

    start_ms: int
    slowdown: float


class GeneratedTrip(NamedTuple):
    """A generated trip: what is known at pick-up, and its end."""

    pickup: TripPickup
    dropoff: TripDropoff


@dataclass(frozen=True)
class TripColumns:
    """Generated trips as columns (one numpy array per field), sorted by pick-up time."""

    trip_id: list[str]
    pickup_time: np.ndarray  # int64 epoch ms
    pickup_zone: np.ndarray  # int64
    dropoff_zone: np.ndarray  # int64
    pickup_borough: list[str]
    passenger_count: np.ndarray  # int64
    trip_distance_km: np.ndarray  # float64
    dropoff_time: np.ndarray  # int64 epoch ms
    duration_s: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.trip_id)

    def trips(self) -> list[GeneratedTrip]:
        """The trips as records."""
        out = []
        for i in range(len(self)):
            tid = self.trip_id[i]
            pickup = TripPickup(
                trip_id=tid,
                pickup_time=int(self.pickup_time[i]),
                pickup_zone=int(self.pickup_zone[i]),
                dropoff_zone=int(self.dropoff_zone[i]),
                pickup_borough=self.pickup_borough[i],
                passenger_count=int(self.passenger_count[i]),
                trip_distance_km=float(self.trip_distance_km[i]),
            )
            out.append(GeneratedTrip(pickup, TripDropoff(tid, int(self.dropoff_time[i]), float(self.duration_s[i]))))
        return out


def _zone_popularity(rng: np.random.Generator, borough: np.ndarray, airport: np.ndarray) -> np.ndarray:
    """Relative pick-up popularity of every zone (index 0 is zero)."""
    base = rng.lognormal(0.0, 0.8, size=N_ZONES + 1)
    boost = np.array([9.0, 1.6, 1.2, 0.8, 0.25, 0.1])[borough]
    pop = base * boost
    pop[list(AIRPORTS)] = [0.5, 60.0, 45.0]  # EWR is rarely a yellow-cab pick-up, JFK/LGA very often
    pop[0] = 0.0
    return pop


def _weekday(ms: np.ndarray) -> np.ndarray:
    """Day of week (Monday = 0) of epoch-ms times; 1970-01-01 was a Thursday."""
    return (ms // DAY_MS + 3) % 7


def _pickup_times(rng: np.random.Generator, n: int, start_ms: int, span_ms: int) -> np.ndarray:
    """``n`` sorted pick-up times whose density follows the demand curves (thinning)."""
    weekday_w = _DEMAND_WEEKDAY[:, None] * _DEMAND_DAY[None, :5]
    weekend_w = _DEMAND_WEEKEND[:, None] * _DEMAND_DAY[None, 5:]
    demand = np.concatenate([weekday_w, weekend_w], axis=1)  # [hour, dow]
    demand = demand / demand.max()
    chosen: list[np.ndarray] = []
    have = 0
    while have < n:
        cand = start_ms + (rng.random(2 * (n - have) + 64) * span_ms).astype(np.int64)
        keep = rng.random(cand.size) < demand[(cand % DAY_MS) // HOUR_MS, _weekday(cand)]
        chosen.append(cand[keep])
        have += int(keep.sum())
    return np.sort(np.concatenate(chosen)[:n])


def generate_columns(
    n: int,
    seed: int,
    start_ms: int = DEFAULT_START_MS,
    drift: Drift | None = None,
    span_days: float = 28.0,
) -> TripColumns:
    """Generate ``n`` trips as columns; the same arguments always give the same trips."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    id_rng = random.Random(seed)  # trip ids: a seeded stream of 128-bit UUIDs
    lat, lon, borough, airport = zone_arrays()
    # The zones' popularity is part of the city, not of a run: it comes from a fixed seed.
    pop = _zone_popularity(np.random.default_rng(7), borough, airport)

    pickup_time = _pickup_times(rng, n, start_ms, max(1, int(span_days * DAY_MS)))
    pu = rng.choice(N_ZONES + 1, size=n, p=pop / pop.sum())

    # Drop-off: gravity model, P(d | p) ~ attraction(d) * exp(-distance / 3 km), airports popular.
    centroid_km = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    attraction = pop.copy()
    attraction[list(AIRPORTS)] = [8.0, 15.0, 15.0]
    # Travellers from an airport go far (mostly to Manhattan): a much longer reach from there.
    reach_km = np.where(airport, 15.0, 3.0)[:, None]
    gravity = attraction[None, :] * (np.exp(-centroid_km / reach_km) + 0.004)
    gravity[:, 0] = 0.0
    cdf = np.cumsum(gravity, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(n)
    do = np.empty(n, dtype=np.int64)
    for zone in np.unique(pu):  # one search per pick-up zone keeps memory at O(n)
        rows = pu == zone
        do[rows] = np.searchsorted(cdf[zone], u[rows], side="right")
    do = np.clip(do, 1, N_ZONES)

    # Distance: both ends jittered inside their zones (~0.6 km), times a street-grid detour.
    jitter = rng.normal(0.0, 0.006, size=(n, 4))
    straight = haversine_km(
        lat[pu] + jitter[:, 0], lon[pu] + jitter[:, 1], lat[do] + jitter[:, 2], lon[do] + jitter[:, 3]
    )
    distance = np.maximum(0.3, straight * rng.uniform(1.18, 1.45, size=n))

    # Speed: the two boroughs' typical speeds, the hour and day, highways on long trips.
    hour = (pickup_time % DAY_MS) // HOUR_MS
    dow = _weekday(pickup_time)
    weekend = dow >= 5
    hour_factor = np.where(weekend, _SPEED_WEEKEND[hour], _SPEED_WEEKDAY[hour])
    hour_factor = hour_factor * np.where(dow == 4, 0.95, 1.0)  # Fridays are a little worse
    speed = np.sqrt(_BOROUGH_SPEED[borough[pu]] * _BOROUGH_SPEED[borough[do]]) * hour_factor
    speed = speed * (1.0 + 0.6 * np.minimum(distance, 25.0) / 25.0)
    if drift is not None:
        speed = np.where(pickup_time >= drift.start_ms, speed / (1.0 + drift.slowdown), speed)

    duration = distance / speed * 3600.0 + 90.0
    duration += np.where(airport[pu], 420.0, 0.0) + np.where(airport[do], 240.0, 0.0)  # terminals, ramps
    duration *= rng.lognormal(0.0, 0.16, size=n)
    delayed = rng.random(n) < 0.04  # accidents, detours, waiting for a passenger: a heavy tail
    duration += np.where(delayed, (rng.pareto(2.2, size=n) + 1.0) * 180.0, 0.0)
    duration = np.clip(np.round(duration, 1), 60.0, 5 * 3600.0)

    passengers = rng.choice(6, size=n, p=_PASSENGERS) + 1
    trip_id = [str(uuid.UUID(int=id_rng.getrandbits(128), version=4)) for _ in range(n)]
    return TripColumns(
        trip_id=trip_id,
        pickup_time=pickup_time.astype(np.int64),
        pickup_zone=pu.astype(np.int64),
        dropoff_zone=do.astype(np.int64),
        pickup_borough=[BOROUGHS[b] for b in borough[pu]],
        passenger_count=passengers.astype(np.int64),
        trip_distance_km=np.round(distance, 3),
        dropoff_time=(pickup_time + np.round(duration * 1000.0)).astype(np.int64),
        duration_s=duration,
    )


def generate_trips(
    n: int,
    seed: int,
    start_ms: int = DEFAULT_START_MS,
    drift: Drift | None = None,
    span_days: float = 28.0,
) -> list[GeneratedTrip]:
    """``n`` trips (pick-up and drop-off records) sorted by pick-up time; deterministic for ``seed``."""
    return generate_columns(n, seed, start_ms, drift, span_days).trips()


def stream_trips(
    n: int,
    seed: int,
    start_ms: int,
    span_ms: int,
    drift: Drift | None = None,
    chunk: int = 50_000,
) -> Iterator[GeneratedTrip]:
    """``n`` trips over ``span_ms`` from ``start_ms``, generated ``chunk`` at a time (bounded memory).

    Chunk ``k`` covers its own slice of the span with seed ``(seed, k)``, so the stream is
    deterministic; it equals :func:`generate_trips` when ``n <= chunk``.
    """
    chunks = max(1, -(-n // chunk))
    for k in range(chunks):
        size = min(chunk, n - k * chunk)
        lo = start_ms + span_ms * k // chunks
        hi = start_ms + span_ms * (k + 1) // chunks
        chunk_seed = seed if chunks == 1 else hash_seed(seed, k)
        yield from generate_columns(size, chunk_seed, lo, drift, max(1, hi - lo) / DAY_MS).trips()


def hash_seed(seed: int, part: int) -> int:
    """A seed for part ``part`` of a run seeded ``seed`` (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{part}".encode()).digest()[:8], "little")
