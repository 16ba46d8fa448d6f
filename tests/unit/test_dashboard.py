"""The Grafana dashboard (deploy/grafana/edml-dashboard.json) shows metrics the code really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import edml.evaluation.metrics  # noqa: F401 - registers the evaluation's metrics
import pytest
from prometheus_client import REGISTRY

import edml.core.metrics  # noqa: F401 - registers the scorer's metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "edml-dashboard.json"
REQUIRED = {
    "edml_events_in_total", "edml_predictions_out_total", "edml_dead_letters_total", "edml_batch_size",
    "edml_scoring_latency_seconds", "edml_model_load_seconds", "edml_active_model_info", "edml_held_events",
    "edml_eval_mae", "edml_eval_rmse", "edml_source_lag", "edml_source_topic_changes_total",
}
METRIC = re.compile(r"\bedml_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_sum", "_count")


def exported_samples() -> set[str]:
    """Every sample name the registered edml metrics produce (counter -> _total, histogram -> _bucket...)."""
    suffixes = {"counter": ("_total",), "histogram": SUFFIXES, "summary": ("_sum", "_count", "")}
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("edml_"):
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict:
    """The dashboard JSON."""
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    """Every non-row panel, rows flattened."""
    out = []
    for panel in dashboard["panels"]:
        out += panel.get("panels", []) if panel["type"] == "row" else [panel]
    return out


def expressions(dashboard: dict) -> list[str]:
    """Every PromQL expression of the dashboard."""
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def referenced_metrics(exprs: list[str]) -> set[str]:
    """Metric names used by the expressions, histogram sample suffixes removed."""
    names = set()
    for expr in exprs:
        for name in METRIC.findall(expr):
            for suffix in SUFFIXES:
                if name.endswith(suffix) and not name.endswith("_total"):
                    name = name.removesuffix(suffix)
            names.add(name)
    return names


def test_dashboard_is_valid_grafana_json(dashboard):
    assert dashboard["title"] and dashboard["uid"] == "edml-scorer"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
    # the data source is chosen on import, not hard-coded
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"panel {panel['title']} has no query"


def test_panels_cover_throughput_latency_dead_letters_model_version_and_live_mae(dashboard):
    used = referenced_metrics(expressions(dashboard))
    assert REQUIRED - used == set()
    titles = " ".join(p["title"].lower() for p in panels(dashboard))
    for topic in ("trips in", "latency", "dead letters", "model version", "mae"):
        assert topic in titles, topic


def test_every_metric_on_the_dashboard_is_exported_by_the_code(dashboard):
    exported = exported_samples()
    assert "edml_events_in_total" in exported and "edml_eval_mae" in exported
    for expr in expressions(dashboard):
        for name in METRIC.findall(expr):
            assert name in exported, f"{name} (in {expr!r}) is not a metric edml exports"


def test_histograms_are_read_as_rates_of_buckets(dashboard):
    for expr in expressions(dashboard):
        if "histogram_quantile" in expr:
            assert re.search(r"rate\(edml_\w+_bucket\[", expr) and "by (le)" in expr, expr


def test_reference_check_catches_an_unknown_metric():
    exported = exported_samples()
    bad = referenced_metrics(["sum(rate(edml_trips_scored_total[5m]))"])
    assert bad == {"edml_trips_scored_total"} and not bad <= exported
