"""Splitting a batch by route, putting predictions back in source order, and each way of combining an ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edml.kafka.messages import OutgoingMessage
from edml.pipelines.declaration import load_pipeline
from edml.scoring.batch import _in_source_order
from edml.scoring.routing import combine, route_index
from tests.unit.test_pipelines import FAULT_SCHEMA, SENSOR_SCHEMA
from tests.unit.test_routing_declaration import ROUTED


@pytest.fixture
def routed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "sensors.toml").write_text(ROUTED.replace('fields = ["site"]', 'fields = ["site", "sensor_id"]')
                                         .replace('values = ["south"]', 'values = ["south", "s-7"]'))
    (folder / "reading.avsc").write_text(json.dumps(SENSOR_SCHEMA))
    (folder / "fault.avsc").write_text(json.dumps(FAULT_SCHEMA))
    monkeypatch.setenv("EDML_PIPELINES_DIR", str(folder))


def test_the_first_field_in_a_route_picks_it_and_the_rest_go_to_the_default(routed: None) -> None:
    p = load_pipeline("sensors")
    assert p.targets == ("sensor-anomaly", "sensor-lab", "sensor-mean")
    site = np.array(["north", "lab", "south", "north", "lab", "north"], dtype=object)
    ids = np.array(["s-1", "s-7", "s-7", "s-7", "s-2", "s-3"], dtype=object)
    got = route_index(p, {"site": site, "sensor_id": ids}, {}, 6)
    # row 1: site lab picks sensor-lab before its id picks the ensemble; row 3: north is in no route, its id is
    assert got.tolist() == [0, 1, 2, 2, 1, 0]
    groups = [np.flatnonzero(got == t) for t in range(3)]
    assert sorted(np.concatenate(groups).tolist()) == list(range(6))


def test_predictions_of_several_groups_come_back_in_source_order() -> None:
    def msgs(rows: list[int]) -> list[OutgoingMessage]:
        return [OutgoingMessage("p", str(i).encode(), b"") for i in rows]

    groups = [(msgs([0, 3, 5]), np.array([0, 3, 5])), (msgs([1, 4]), np.array([1, 4])), (msgs([2]), np.array([2]))]
    assert [m.key for m in _in_source_order(groups)] == [str(i).encode() for i in range(6)]
    one = msgs([0, 1])
    assert _in_source_order([(one, None)]) is one  # one model: as it was encoded


def test_each_combine_rule() -> None:
    a, b, c = np.array([1.0, 0.9, 0.2]), np.array([3.0, 0.3, 0.4]), np.array([8.0, 0.6, 0.45])
    assert combine("mean", [a, b, c]).tolist() == pytest.approx([4.0, 0.6, 0.35])
    assert combine("median", [a, b, c]).tolist() == pytest.approx([3.0, 0.6, 0.4])
    assert combine("weighted", [a, b], [3.0, 1.0]).tolist() == pytest.approx([1.5, 0.75, 0.25])
    # binary: the member farthest from 0.5 either way wins, per row
    assert combine("most-confident", [a[1:], b[1:], c[1:]]).tolist() == pytest.approx([0.9, 0.2])
    vectors = [np.array([[0.1, 0.9], [0.5, 0.5]]), np.array([[0.3, 0.7], [0.1, 0.9]])]
    assert combine("mean", vectors) == pytest.approx(np.array([[0.2, 0.8], [0.3, 0.7]]))
