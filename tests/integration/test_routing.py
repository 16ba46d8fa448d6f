"""Several models in one scorer on a real broker: routes, an independent swap, fallbacks, retirement, ensembles.

A pipeline declared only in this test's TOML routes each event by its ``region`` to a model
(``east``, ``west``) or to an ensemble of both (``blend``: mean, ``tilted``: weighted mean). Every
model is linear in float64 inputs, so each prediction is checked against its model's formula.
``east`` falls back to ``basic``, which reads only ``x``; ``west`` has no fallback. ``x`` and ``z``
have declared ranges; ``w``, read by ``east`` alone, a range inferred from its reference.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
from edml.model_topic.artifact import read_model_folder
from edml.model_topic.publisher import publish_model, retire_model
from edml.schemas.records import DeadLetter
from edml.schemas.serde import dead_letter_serde
from edml.schemas.wire import topic_serdes

from edml.core.config import Settings
from edml.kafka.clients import make_producer
from edml.kafka.reading import read_to_end
from edml.pipelines.bound import BoundPipeline
from edml.pipelines.predictions import prediction_schema
from tests.helpers.pipelines import declare_pipeline
from tests.integration.scorer_process import ScorerProcess, statuses, wait_until

pytestmark = pytest.mark.kafka

SCHEMA = {
    "type": "record", "name": "Reading", "namespace": "test.routing",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "at", "type": "long"},
        {"name": "region", "type": "string"},
        {"name": "x", "type": "double"},
        {"name": "z", "type": "double"},
        {"name": "w", "type": "double"},
    ],
}
DECLARATION = """
description = "readings routed by region to their own model"
[input]
topic = "routed-readings"
schema = "reading.avsc"
key = "event_id"
event_time = "at"
[model]
name = "east"
fallback = "basic"
[models.west]
[models.basic]
optional = true
[routing]
fields = ["region"]
[[routing.route]]
model = "west"
values = ["west"]
[[routing.route]]
model = "blend"
values = ["mix"]
[[routing.route]]
model = "tilted"
values = ["tilt"]
[ensembles.blend]
members = ["east", "west"]
[ensembles.tilted]
members = ["east", "west"]
combine = "weighted"
weights = [3.0, 1.0]
[constraints]
x = { range = [-100, 100] }
z = { range = [-100, 100] }
w = "infer"   # from east's reference; west and basic do not read w
"""
# (a, b, c) of y = a*x + b*z + c; basic reads only x (b unused)
# (a, b, c, d) of y = a*x + b*z + c + d*w; east reads x, z, w; west x, z; basic only x
COEF = {("east", "v1"): (2.0, 3.0, 1.0, 0.5), ("east", "v2"): (5.0, -1.0, 0.5, -2.0),
        ("west", "v1"): (-1.0, 4.0, 10.0, 0.0), ("basic", "v1"): (0.5, 0.0, -2.0, 0.0)}
INPUTS = {"east": ("x", "z", "w"), "west": ("x", "z"), "basic": ("x",)}
# east's reference: w was -5..5 in training, so its inferred range (widened by 10%) is -6..6
REFERENCE = {"w": {"kind": "numeric", "min": -5.0, "max": 5.0, "edges": [-5.0, 0.0, 5.0], "fractions": [0.5, 0.5]}}


class Linear(tf.Module):
    """y = a*x + b*z + c + d*w in float64, reading only ``inputs``."""

    def __init__(self, a: float, b: float, c: float, d: float, inputs: tuple[str, ...]) -> None:
        super().__init__()
        specs = [tf.TensorSpec([None], tf.float64, name=n) for n in inputs]
        if inputs == ("x", "z", "w"):
            self.serve = tf.function(lambda x, z, w: {"y": a * x + b * z + c + d * w}, input_signature=specs)
        elif inputs == ("x", "z"):
            self.serve = tf.function(lambda x, z: {"y": a * x + b * z + c}, input_signature=specs)
        else:
            self.serve = tf.function(lambda x: {"y": a * x + c}, input_signature=specs)


def write_model(folder: Path, name: str, version: str) -> Path:
    """A model folder as the trainer writes it: SavedModel, golden rows, metrics, reference."""
    inputs = INPUTS[name]
    module = Linear(*COEF[(name, version)], inputs)
    tf.saved_model.save(module, str(folder / "saved_model"),
                        signatures={"serving_default": module.serve.get_concrete_function()})
    golden = {k: v for k, v in {"x": [1.0, -2.5, 30.0], "z": [0.5, 4.0, -7.25], "w": [-1.0, 0.0, 4.5]}.items()
              if k in inputs}
    out = module.serve(**{k: tf.constant(v, dtype=tf.float64) for k, v in golden.items()})
    (folder / "golden.json").write_text(json.dumps({"inputs": golden, "outputs": {"y": out["y"].numpy().tolist()}}))
    (folder / "metrics.json").write_text(json.dumps({"rmse": 1.0}))
    if "w" in inputs:
        (folder / "reference.json").write_text(json.dumps(REFERENCE))
    return folder


def formula(name: str, version: str, r: dict[str, Any]) -> float:
    a, b, c, d = COEF[(name, version)]
    return a * r["x"] + b * r["z"] + c + d * r["w"]


@pytest.fixture
def routed(settings: Settings, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, BoundPipeline, Settings]:
    """The routed pipeline declared in a folder of this test: its settings (topics created), and the base settings."""
    s, bound = declare_pipeline(settings, tmp_path, monkeypatch, "routed", "reading.avsc", SCHEMA, DECLARATION)
    return s, bound, settings


REGIONS = ("east", "west", "mix", "north", "tilt")  # north: no route, the default (east)


def event(i: int, region: str | None = None, **changes: Any) -> dict[str, Any]:
    """A valid reading, with ``changes``."""
    return {"event_id": f"e-{i:05d}", "at": 1_767_225_600_000 + i * 1000,
            "region": region or REGIONS[i % len(REGIONS)], "x": (i % 60) * 0.5 - 15.0, "z": (i % 17) * 1.5 - 10.0,
            "w": float(i % 11 - 5),
            **changes}


def produce(s: Settings, bound: BoundPipeline, records: list[dict[str, Any]]) -> None:
    serde = topic_serdes(s).for_schema(s.topics.trips, bound.schema)
    producer = make_producer(s)
    for r in records:
        producer.produce(s.topics.trips, key=r["event_id"].encode(), value=serde.encode(r))
    assert producer.flush(30) == 0


def dead(s: Settings) -> dict[str, DeadLetter]:
    return {(d := dead_letter_serde().decode(m.value)).key.decode(): d for m in read_to_end(s, s.topics.dead_letter)}


def active(s: Settings, name: str, version: str) -> bool:
    return any(st.model_name == name and st.version == version and st.status == "active" for st in statuses(s))


def test_routes_swaps_fallbacks_retirement_and_ensembles(
        routed: tuple[Settings, BoundPipeline, Settings], tmp_path: Path) -> None:
    s, bound, base = routed
    folders = {key: write_model(tmp_path / f"{key[0]}-{key[1]}", *key) for key in COEF}
    signature = read_model_folder(folders[("east", "v1")], "east", "v1").signature
    serde = topic_serdes(s).for_schema(s.topics.predictions, prediction_schema(bound.pipeline, bound.key, signature))

    def predictions(topic: str) -> list[dict[str, Any]]:
        return [serde.decode(m.value) for m in read_to_end(s, topic)]

    # 1. held start: with only east published, nothing is scored, not even east's own events
    first = [event(i) for i in range(250)]
    bad = [event(900, "east", z=500.0), event(901, "east", x=500.0), event(902, "west", z=-500.0),
           event(903, "east", w=50.0), event(904, "west", w=50.0)]
    produce(s, bound, first + bad)
    publish_model(s, folders[("east", "v1")], "east", version="v1", pipeline=bound)
    scorer = ScorerProcess(base, args=["--pipeline", "routed"]).start()
    try:
        wait_until(lambda: active(s, "east", "v1"), 120, message=scorer.log())
        assert read_to_end(s, s.topics.predictions) == [] and dead(s) == {}
        # the optional fallback first: the partitions resume as soon as west, the last required model, serves
        publish_model(s, folders[("basic", "v1")], "basic", version="v1", pipeline=bound)
        wait_until(lambda: active(s, "basic", "v1"), 60, message=scorer.log())
        assert read_to_end(s, s.topics.predictions) == [] and dead(s) == {}
        publish_model(s, folders[("west", "v1")], "west", version="v1", pipeline=bound)
        wait_until(lambda: len(read_to_end(s, s.topics.predictions)) >= len(first) + 3 and len(dead(s)) >= 2, 120,
                   message=scorer.log())
        held = predictions(s.topics.predictions)

        # 3. a swap of east's route: west keeps its version and values
        publish_model(s, folders[("east", "v2")], "east", version="v2", pipeline=bound)
        wait_until(lambda: active(s, "east", "v2"), 60, message=scorer.log())
        second = [event(i, ("east", "west", "mix")[i % 3]) for i in range(300, 360)]
        produce(s, bound, second)
        wait_until(lambda: len(read_to_end(s, s.topics.predictions)) >= len(held) + len(second), 60,
                   message=scorer.log())

        # 4. retire both routed models: east's events go to its fallback, west's become no-model dead letters
        retire_model(s, "east")
        retire_model(s, "west")
        wait_until(lambda: any(st.model_name == "west" and st.status != "active" for st in statuses(s)), 60,
                   message=scorer.log())
        third = [event(i, ("east", "west", "north")[i % 3]) for i in range(400, 430)]
        produce(s, bound, third)
        wait_until(lambda: len(read_to_end(s, s.topics.predictions)) >= len(held) + len(second) + 20
                   and len(dead(s)) >= 2 + 10, 60, message=scorer.log())
    finally:
        scorer.stop()

    preds = predictions(s.topics.predictions)
    shadow = predictions(s.topics.shadow_predictions)
    letters = dead(s)
    print(f"[routing] events={len(first) + len(bad) + len(second) + len(third)} predictions={len(preds)} "
          f"shadow={len(shadow)} dead_letters={len(letters)}: "
          + "; ".join(f"{k} {d.error_kind} {d.message}" for k, d in sorted(letters.items())))
    sent = {r["event_id"]: r for r in first + bad + second + third}
    # exactly one primary prediction per event that is not a dead letter
    assert Counter(p["event_id"] for p in preds) == Counter(k for k in sent if k not in letters)

    # 1-2. the held events: each on its route's model, its value that model's formula
    routes = {"east": "east", "north": "east", "west": "west", "mix": "blend", "tilt": "tilted"}
    by_key = {p["event_id"]: p for p in preds}
    for r in first:
        p = by_key[r["event_id"]]
        target = routes[r["region"]]
        assert p["model_name"] == target and p["role"] == "champion" and p["fallback_reason"] is None
        if target in ("east", "west"):
            assert p["model_version"] == "v1" and p["members"] is None
            assert p["y"] == pytest.approx(formula(target, "v1", r), rel=1e-12, abs=1e-12)
        else:  # 6. an ensemble: the combination of its members, naming each
            e, w = formula("east", "v1", r), formula("west", "v1", r)
            expected = (e + w) / 2 if target == "blend" else (3 * e + w) / 4
            assert p["model_version"] == "v1+v1" and p["members"] == ["east@v1", "west@v1"]
            assert p["y"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert {routes[r["region"]] for r in first} == {"east", "west", "blend", "tilted"}
    # 6. each member's own prediction of an ensemble's event is on the shadow topic, role member
    # (east's version: v1 before the swap, v2 after it)
    ensemble_keys = {r["event_id"]: east for rows, east in ((first, "v1"), (second, "v2")) for r in rows
                     if routes[r["region"]] in ("blend", "tilted")}
    members: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for p in shadow:
        assert p["role"] == "member"
        members[p["event_id"]][p["model_name"]] = p
    assert sorted(members) == sorted(ensemble_keys)
    for k in ensemble_keys:
        assert set(members[k]) == {"east", "west"}
        for name, p in members[k].items():
            version = ensemble_keys[k] if name == "east" else "v1"
            assert p["model_version"] == version
            assert p["y"] == pytest.approx(formula(name, version, sent[k]), rel=1e-12, abs=1e-12)

    # 5. bad in z (only east reads it): basic scores it, saying why; bad in x (basic reads it too): a dead letter
    fb = by_key["e-00900"]
    assert (fb["model_name"], fb["model_version"], fb["role"]) == ("basic", "v1", "fallback")
    assert fb["fallback_reason"] == "z 500.0 is out of range -100..100"
    assert fb["y"] == pytest.approx(formula("basic", "v1", sent["e-00900"]), rel=1e-12)
    assert (letters["e-00901"].error_kind, letters["e-00901"].message) == ("out-of-range",
                                                                          "x 500.0 is out of range -100..100")
    # west has no fallback: bad in any field, a dead letter
    assert (letters["e-00902"].error_kind, letters["e-00902"].message) == ("out-of-range",
                                                                          "z -500.0 is out of range -100..100")

    # out of east's inferred range in w, which basic does not read: basic, with east's reason; west reads no w
    fb = by_key["e-00903"]
    assert (fb["model_name"], fb["model_version"], fb["role"]) == ("basic", "v1", "fallback")
    assert fb["fallback_reason"] == "east v1: w 50.0 is out of range -6..6"
    assert fb["y"] == pytest.approx(formula("basic", "v1", sent["e-00903"]), rel=1e-12)
    west = by_key["e-00904"]
    assert (west["model_name"], west["model_version"], west["role"], west["fallback_reason"]) == (
        "west", "v1", "champion", None)
    assert west["y"] == pytest.approx(formula("west", "v1", sent["e-00904"]), rel=1e-12)

    # 3. after the swap: east's events on v2, west's still v1 with the same formula; the ensemble names both
    for r in second:
        p = by_key[r["event_id"]]
        if r["region"] == "mix":
            assert (p["model_name"], p["model_version"], p["members"]) == ("blend", "v2+v1", ["east@v2", "west@v1"])
            expected = (formula("east", "v2", r) + formula("west", "v1", r)) / 2
            assert p["y"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
            continue
        version = "v2" if r["region"] == "east" else "v1"
        assert (p["model_name"], p["model_version"]) == (r["region"], version)
        assert p["y"] == pytest.approx(formula(r["region"], version, r), rel=1e-12, abs=1e-12)

    # 4. after retirement: east (and the default) to basic as fallbacks, west to no-model dead letters
    for r in third:
        if r["region"] == "west":
            assert r["event_id"] not in by_key
            assert letters[r["event_id"]].error_kind == "no-model"
            assert letters[r["event_id"]].message == "no model west is serving (retired or never published)"
        else:
            p = by_key[r["event_id"]]
            assert (p["model_name"], p["model_version"], p["role"]) == ("basic", "v1", "fallback")
            assert p["fallback_reason"] == "east is not serving (retired)"
            assert p["y"] == pytest.approx(formula("basic", "v1", r), rel=1e-12, abs=1e-12)

    # 2. per source partition, its predictions leave in source order
    source = {m.key.decode(): (m.partition, m.offset) for m in read_to_end(s, s.topics.trips)}
    out_parts: dict[tuple[int, int], list[int]] = defaultdict(list)
    for m in read_to_end(s, s.topics.predictions):
        part, offset = source[serde.decode(m.value)["event_id"]]
        out_parts[(m.partition, part)].append(offset)
    assert out_parts and all(offsets == sorted(offsets) for offsets in out_parts.values())
