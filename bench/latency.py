"""Latency at an offered rate: from each trip's produce timestamp to its prediction's, joined by trip id."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bench.common import TripProducer, wait_for_messages
from edml.core.config import Settings
from edml.kafka.reading import read_to_end


@dataclass(frozen=True)
class LatencyFigures:
    """Percentiles of one offered rate."""

    offered_per_s: float
    achieved_per_s: float  # what the producer managed (the machine is shared)
    trips: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # the slowest 250 ms windows of the run: (seconds from its first trip, worst latency in ms)
    worst_windows: list[tuple[float, float]]


def percentiles(latencies_ms: list[float]) -> tuple[float, float, float, float]:
    """p50, p95, p99 and max."""
    a = np.asarray(latencies_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return float(p50), float(p95), float(p99), float(a.max())


def measure(settings: Settings, producer: TripProducer, messages: list[tuple[bytes, bytes]], rate: float,
            seen_before: int) -> LatencyFigures:
    """Produce ``messages`` at ``rate``; wait for their predictions; join by key.

    ``seen_before`` is how many predictions the topic held before (earlier phases).
    """
    started, ended = producer.send(settings.topics.trips, messages, rate=rate)
    wait_for_messages(settings, settings.topics.predictions, seen_before + len(messages), timeout=120)
    keys = {k for k, _ in messages}
    produced = {m.key: m.timestamp_ms for m in read_to_end(settings, settings.topics.trips) if m.key in keys}
    latencies, windows = [], {}
    first = min(produced.values(), default=0)
    for m in read_to_end(settings, settings.topics.predictions):
        t = produced.get(m.key)
        if t is not None:
            latencies.append(m.timestamp_ms - t)
            w = (t - first) // 250
            windows[w] = max(windows.get(w, 0), m.timestamp_ms - t)
    if len(latencies) < len(messages):
        raise RuntimeError(f"only {len(latencies)} of {len(messages)} trips have a prediction")
    p50, p95, p99, worst = percentiles(latencies)
    slowest = sorted(windows.items(), key=lambda kv: -kv[1])[:5]
    return LatencyFigures(rate, len(messages) / max(ended - started, 1e-3), len(messages), p50, p95, p99, worst,
                          [(w * 0.25, float(ms)) for w, ms in slowest])


def settle(seconds: float = 1.0) -> None:
    """Let the scorer drain before the next phase."""
    time.sleep(seconds)
