"""The 265 taxi zones of a synthetic NYC: ids, boroughs, centroids and the airports.

Ids follow the real NYC TLC zone count (1..265) and the real ids of the three airports
(EWR = 1, JFK = 132, LGA = 138). The other zones get a borough and a centroid from a fixed
seeded draw, so the map is the same on every machine and in every process.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

N_ZONES = 265
EWR, JFK, LGA = 1, 132, 138
AIRPORTS = (EWR, JFK, LGA)

BOROUGHS = ("Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR")

# Zones per borough, as in the TLC map (its two "Unknown" ids are given to Manhattan and Brooklyn here).
_BOROUGH_COUNTS = {"Manhattan": 70, "Brooklyn": 62, "Queens": 69, "Bronx": 43, "Staten Island": 20, "EWR": 1}

_AIRPORT_CENTROIDS = {EWR: (40.6895, -74.1745), JFK: (40.6413, -73.7781), LGA: (40.7769, -73.8740)}


@dataclass(frozen=True, slots=True)
class Zone:
    """One taxi zone: its id, borough and centroid."""

    id: int
    borough: str
    lat: float
    lon: float
    is_airport: bool


def _centroid(borough: str, rng: random.Random) -> tuple[float, float]:
    """A plausible centroid inside ``borough``."""
    if borough == "Manhattan":
        # Manhattan is a long thin island: points along its axis from the Battery to Inwood.
        t = rng.random()
        lat = 40.705 + t * (40.870 - 40.705)
        lon = -74.012 + t * (-73.920 + 74.012)
        return lat + rng.gauss(0, 0.004), lon + rng.gauss(0, 0.008)
    centre, spread = {
        "Brooklyn": ((40.650, -73.950), (0.035, 0.045)),
        "Queens": ((40.725, -73.820), (0.040, 0.060)),
        "Bronx": ((40.850, -73.875), (0.025, 0.035)),
        "Staten Island": ((40.580, -74.150), (0.035, 0.045)),
    }[borough]
    return centre[0] + rng.gauss(0, spread[0]), centre[1] + rng.gauss(0, spread[1])


def _build_zones() -> dict[int, Zone]:
    rng = random.Random(20240101)  # the map is part of the code: a fixed seed
    boroughs: list[str] = []
    for borough, count in _BOROUGH_COUNTS.items():
        if borough == "EWR":
            continue
        boroughs += [borough] * (count - (2 if borough == "Queens" else 0))  # JFK and LGA are Queens zones
    rng.shuffle(boroughs)
    zones: dict[int, Zone] = {}
    it = iter(boroughs)
    for zone_id in range(1, N_ZONES + 1):
        if zone_id in AIRPORTS:
            lat, lon = _AIRPORT_CENTROIDS[zone_id]
            zones[zone_id] = Zone(zone_id, "EWR" if zone_id == EWR else "Queens", lat, lon, True)
            continue
        borough = next(it)
        lat, lon = _centroid(borough, rng)
        zones[zone_id] = Zone(zone_id, borough, round(lat, 5), round(lon, 5), False)
    return zones


ZONES: dict[int, Zone] = _build_zones()
VALID_ZONE_IDS: frozenset[int] = frozenset(ZONES)


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (vectorised)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(a))


def zone_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-zone arrays indexed by zone id (index 0 unused): lat, lon, borough index, is-airport."""
    lat = np.zeros(N_ZONES + 1)
    lon = np.zeros(N_ZONES + 1)
    borough = np.zeros(N_ZONES + 1, dtype=np.int64)
    airport = np.zeros(N_ZONES + 1, dtype=bool)
    for z in ZONES.values():
        lat[z.id], lon[z.id], borough[z.id], airport[z.id] = z.lat, z.lon, BOROUGHS.index(z.borough), z.is_airport
    return lat, lon, borough, airport


def airport_trips(pickup_zone: np.ndarray, dropoff_zone: np.ndarray) -> np.ndarray:
    """Which trips start or end at an airport (EWR, JFK or LGA): a boolean mask."""
    return np.isin(pickup_zone, AIRPORTS) | np.isin(dropoff_zone, AIRPORTS)


def distance_km(a: int, b: int) -> float:
    """Straight-line distance between the centroids of zones ``a`` and ``b``."""
    za, zb = ZONES[a], ZONES[b]
    return float(haversine_km(np.array(za.lat), np.array(za.lon), np.array(zb.lat), np.array(zb.lon)))
