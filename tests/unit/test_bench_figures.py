"""The bench's arithmetic: steady-state rate, percentiles, targets and the markdown table (no timing)."""

from __future__ import annotations

import pytest

from bench.common import steady_rate
from bench.latency import percentiles
from bench.report import markdown
from bench.run import targets


def test_steady_rate_skips_warm_up_and_tail() -> None:
    # 1,000 outputs a second for 10 s, after a slow first second of 10 outputs
    ts = [i * 100 for i in range(10)] + [1000 + i for i in range(10_000)]
    rate = steady_rate(ts)
    assert rate.outputs == 10_010
    assert rate.events_per_s == pytest.approx(1000, rel=0.01)


def test_steady_rate_needs_outputs() -> None:
    with pytest.raises(RuntimeError, match="too few"):
        steady_rate([1, 2, 3])


def test_percentiles() -> None:
    p50, p95, p99, worst = percentiles([float(i) for i in range(1, 101)])
    assert (round(p50), round(p95), round(p99), worst) == (50, 95, 99, 100.0)


def _results(edml_ratio: float, p99: float, unscored: int) -> dict:
    row = {"label": "edml serve", "processes": 2, "events": 100, "events_per_s": 1000.0, "vs_ceiling": edml_ratio,
           "vs_bytewax_connectors": 1.1, "vs_peer": 80.0, "peak_rss_mb": 600.0}
    return {
        "throughput": [row],
        "latency": [{"offered_per_s": 5000.0, "achieved_per_s": 5000.0, "trips": 10, "p50_ms": 10.0, "p95_ms": 20.0,
                     "p99_ms": p99, "max_ms": p99}],
        "swap": {"rate_per_s": 2000.0, "trips": 10, "scored_trips": 10 - unscored, "unscored_trips": unscored,
                 "predictions_v1": 5, "predictions_v2": 5, "publish_seconds": 1.0, "first_v2_after_publish_ms": 400.0},
        "latency_peak_rss_mb": 610.0, "swap_peak_rss_mb": 620.0,
    }


def test_targets_say_what_is_met() -> None:
    met = {t["name"]: t["met"] for t in targets(_results(0.7, 50.0, 0))}
    assert all(met.values()), met
    missed = {t["name"]: t["met"] for t in targets(_results(0.4, 150.0, 3))}
    assert [name for name, ok in missed.items() if not ok] == [
        "edml (2 process(es)) / the faster passthrough (edml's source and sink), same processes",
        "p99 latency at 5,000 trips/s",
        "trips unscored during the swap",
    ]


def test_markdown_table_names_the_machine_and_misses() -> None:
    results = _results(0.4, 50.0, 0)
    results.update(started_at="2026-01-01T00:00:00Z", mode="full", commit="abc", seconds=200.0,
                   load_average_start=[1.0, 1.0, 1.0],
                   machine={"cpu": "Test CPU", "cores": 2, "memory_gb": 8.0, "os": "Linux", "python": "3.11"})
    results["targets"] = targets(results)
    text = markdown(results)
    assert "Test CPU, 2 cores" in text
    assert "| edml serve | 2 | 100 | 1,000 | 0.40x | 1.10x | 80.00x | 600 MB | - |" in text
    assert "**no**" in text


def test_the_routed_taxi_pipeline_is_measured_against_the_single_model() -> None:
    from bench.routed import LABEL

    results = _results(0.7, 50.0, 0)
    routed_row = {"label": LABEL, "processes": 2, "events": 100, "events_per_s": 450.0, "vs_ceiling": 0.3,
                  "vs_bytewax_connectors": 0.5, "vs_peer": None, "peak_rss_mb": 700.0, "vs_single_model": 0.45}
    results["throughput"].append(routed_row)
    name = "taxi-routed, two routes + an ensemble (2 process(es)) / edml serve, single model, same processes"
    assert {t["name"]: (t["measured"], t["met"]) for t in targets(results)}[name] == ("0.45x", False)
    routed_row["vs_single_model"] = 0.8
    assert {t["name"]: t["met"] for t in targets(results)}[name] is True
    rss = next(t for t in targets(results) if t["name"] == "peak RSS of a scoring process")
    assert rss["measured"] == "700 MB"  # the routed scorer's memory counts too
    results.update(started_at="2026-01-01T00:00:00Z", mode="quick", commit="abc", seconds=100.0,
                   load_average_start=[1.0, 1.0, 1.0],
                   machine={"cpu": "Test CPU", "cores": 2, "memory_gb": 8.0, "os": "Linux", "python": "3.11"})
    assert f"{LABEL}: 450 events/s with 2 process(es), 0.80x of the single-model taxi pipeline" in markdown(results)
