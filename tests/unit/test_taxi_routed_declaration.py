"""The built-in ``taxi-routed`` declaration: the taxi pipeline with an airport route and a fallback.

The TOML is checked here against the keys the scorer reads ([model] fallback, [models.NAME],
[routing], [[routing.route]]) and against the taxi pipeline it extends. Parsing it into a
:class:`~edml.pipelines.declaration.Pipeline` needs a parser that knows routing: that test skips,
saying why, until ``Pipeline`` has routing.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from edml.trainer.kinds import AIRPORT, BASIC, FULL
from edml.trainer.zones import AIRPORTS

from edml.pipelines.declaration import BUILT_IN_DIR, Pipeline, declared_names, load_pipeline

ROUTED = "taxi-routed"


def _tables(name: str) -> dict:
    return tomllib.loads((BUILT_IN_DIR / f"{name}.toml").read_text())


def test_it_is_a_built_in_pipeline_beside_the_default() -> None:
    assert {"taxi", ROUTED} <= set(declared_names())


def test_it_routes_airport_trips_to_the_airport_model_with_the_basic_fallback() -> None:
    routed = _tables(ROUTED)
    assert routed["model"] == {"name": FULL.model_name, "fallback": BASIC.model_name}
    assert routed["models"] == {AIRPORT.model_name: {"fallback": BASIC.model_name},
                                BASIC.model_name: {"optional": True}}
    assert routed["routing"]["fields"] == ["pickup_zone", "dropoff_zone"]
    assert routed["routing"]["default"] == FULL.model_name
    assert routed["routing"]["route"] == [{"model": AIRPORT.model_name, "values": sorted(AIRPORTS)}]


def test_it_reads_and_judges_trips_as_the_taxi_pipeline_does() -> None:
    routed, taxi = _tables(ROUTED), _tables("taxi")
    for table in ("input", "inputs", "outputs", "constraints", "labels"):
        assert routed[table] == taxi[table], table
    # its own prediction topics (taxi-routed-predictions, ...): no [topics] table
    assert "topics" not in routed


def test_the_parser_reads_it_once_pipelines_have_routing() -> None:
    if "routing" not in {f.name for f in dataclasses.fields(Pipeline)}:
        pytest.skip("edml.pipelines.declaration.Pipeline has no routing yet: taxi-routed.toml parses once it does")
    from edml.core.config import Settings
    from edml.pipelines.bound import bind_pipeline, pipeline_settings

    pipeline = load_pipeline(ROUTED)
    assert {FULL.model_name, AIRPORT.model_name, BASIC.model_name} <= set(pipeline.models)
    assert pipeline.model == FULL.model_name
    bound = bind_pipeline(pipeline)  # the fields, constraints and labels fit the TripPickup/TripDropoff schemas
    assert bound.key.name == "trip_id"
    settings = pipeline_settings(Settings(), pipeline)
    assert settings.topics.trips == "trips" and settings.topics.labels == "dropoffs"
    assert settings.topics.predictions == "taxi-routed-predictions"


def test_the_bench_variant_sends_airport_trips_to_an_ensemble(tmp_path: Path) -> None:
    from bench.routed import ENSEMBLE, declare

    variant = tomllib.loads(declare("routed-p1-r0", tmp_path).read_text())
    assert variant["routing"]["route"] == [{"model": ENSEMBLE, "values": sorted(AIRPORTS)}]
    assert variant["ensembles"] == {ENSEMBLE: {"members": [AIRPORT.model_name, FULL.model_name], "combine": "mean"}}
    routed = _tables(ROUTED)
    for table in ("input", "model", "models", "constraints", "labels"):
        assert variant[table] == routed[table], table
