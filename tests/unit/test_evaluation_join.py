"""The prediction x label join: either order, late sides, expiry on event time, duplicates, recovery."""

from __future__ import annotations

import pickle

from edml.evaluation.join import EVALUATED, NO_LABEL, NO_PREDICTION, KeyJoin, Label, Scored, shard_of
from edml.schemas.records import Evaluation

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01
TIMEOUT = 24 * H


def pred(trip: str, pickup: int, predicted: float = 600.0, version: str = "v1", role: str = "champion") -> Scored:
    return Scored(trip, "trip-duration", version, role, pickup, predicted)


def drop(trip: str, pickup: int, duration_s: float) -> Label:
    """The label of a trip: its duration, known when the trip ends."""
    return Label(trip, duration_s, pickup + int(duration_s * 1000))


def feed(join: KeyJoin, *items: Scored | Label) -> list[Evaluation]:
    out: list[Evaluation] = []
    for item in items:
        emitted, discard = join.on_item(item)
        assert discard is False  # a shard keeps its state
        out.extend(emitted)
    return out


def test_prediction_first_then_dropoff_is_evaluated() -> None:
    join = KeyJoin(TIMEOUT)
    assert feed(join, pred("a", T0, 700.0)) == []
    [e] = feed(join, drop("a", T0, 600.0))
    assert (e.outcome, e.key, e.model_version, e.role) == (EVALUATED, "a", "v1", "champion")
    assert (e.actual, e.predicted, e.error) == (600.0, 700.0, 100.0)
    assert e.event_time == T0
    assert e.observed_time == T0 + 600_000  # the drop-off time: windows count the trip when it ended


def test_dropoff_before_its_prediction_is_evaluated() -> None:
    join = KeyJoin(TIMEOUT)
    assert feed(join, drop("a", T0, 300.0)) == []
    [e] = feed(join, pred("a", T0, 250.0))
    assert e.outcome == EVALUATED and e.error == -50.0


def test_a_trip_three_hours_long_is_evaluated_not_lost() -> None:
    join = KeyJoin(TIMEOUT)
    # other trips keep both clocks moving while trip "long" is under way
    items: list[Scored | Label] = [pred("long", T0, 3000.0)]
    for i in range(1, 12):
        t = T0 + i * 15 * 60_000
        items += [pred(f"x{i}", t), drop(f"x{i}", t, 600.0)]
    items.append(drop("long", T0, 3 * 3600.0))
    out = feed(join, *items)
    [long] = [e for e in out if e.key == "long"]
    assert long.outcome == EVALUATED and long.actual == 10800.0 and long.error == 3000.0 - 10800.0


def test_unmatched_sides_expire_once_the_clock_passes_the_timeout() -> None:
    join = KeyJoin(TIMEOUT)
    feed(join, pred("lonely-pred", T0), drop("lonely-drop", T0, 600.0))
    # 23 h later: not yet expired
    assert [e for e in feed(join, pred("b", T0 + 23 * H), drop("b", T0 + 23 * H, 60.0)) if e.outcome != EVALUATED] == []
    out = feed(join, pred("c", T0 + 25 * H), drop("c", T0 + 25 * H, 60.0))
    expired = {e.key: e for e in out if e.outcome != EVALUATED}
    assert expired["lonely-pred"].outcome == NO_LABEL
    assert expired["lonely-pred"].model_version == "v1" and expired["lonely-pred"].actual is None
    assert expired["lonely-drop"].outcome == NO_PREDICTION
    assert expired["lonely-drop"].model_version == "" and expired["lonely-drop"].actual == 600.0
    assert expired["lonely-drop"].event_time == T0 + 600_000  # the label's time


def test_no_expiry_while_one_input_has_not_caught_up() -> None:
    """Predictions far ahead (a backlog of drop-offs still queued) must not expire anything."""
    join = KeyJoin(TIMEOUT)
    feed(join, drop("first", T0, 60.0), pred("a", T0))
    out = feed(join, *[pred(f"p{i}", T0 + i * H) for i in range(1, 60)])
    assert [e for e in out if e.outcome != EVALUATED] == []
    [e] = feed(join, drop("a", T0, 500.0))
    assert e.outcome == EVALUATED


def test_challenger_after_the_dropoff_is_evaluated_on_the_same_trip() -> None:
    join = KeyJoin(TIMEOUT)
    feed(join, pred("a", T0, 700.0, "v1", "champion"))
    [champion] = feed(join, drop("a", T0, 600.0))
    [challenger] = feed(join, pred("a", T0, 610.0, "v2", "challenger"))
    assert (champion.model_version, champion.error) == ("v1", 100.0)
    assert (challenger.model_version, challenger.role, challenger.error) == ("v2", "challenger", 10.0)
    assert challenger.observed_time == champion.observed_time  # the same trip lands in the same window


def test_duplicates_are_counted_once() -> None:
    join = KeyJoin(TIMEOUT)
    out = feed(join, pred("a", T0), pred("a", T0), drop("a", T0, 600.0), drop("a", T0, 600.0), pred("a", T0))
    assert len(out) == 1


def test_a_matched_dropoff_does_not_expire_as_unmatched() -> None:
    join = KeyJoin(TIMEOUT)
    feed(join, pred("a", T0), drop("a", T0, 600.0))
    out = feed(join, pred("z", T0 + 30 * H), drop("z", T0 + 30 * H, 60.0))
    assert [e.outcome for e in out] == [EVALUATED]
    assert "a" not in join.keys  # and its state is gone


def test_snapshot_restores_pending_joins() -> None:
    join = KeyJoin(TIMEOUT)
    feed(join, drop("a", T0, 600.0), pred("b", T0 + H))
    snapshot = pickle.loads(pickle.dumps(join.snapshot()))  # what Bytewax stores
    feed(join, pred("a", T0))  # changes after the snapshot do not leak into it
    restored = KeyJoin(TIMEOUT, snapshot)
    assert restored.pending() == 2
    [e] = feed(restored, pred("a", T0, 650.0))
    assert e.outcome == EVALUATED and e.error == 50.0
    # and deadlines survive too
    out = feed(restored, pred("z", T0 + 30 * H), drop("z", T0 + 30 * H, 60.0))
    assert {e.key for e in out if e.outcome == NO_LABEL} == {"b"}


def test_shards_are_stable_and_spread() -> None:
    assert shard_of("trip-1", 16) == shard_of("trip-1", 16)
    assert len({shard_of(f"trip-{i}", 8) for i in range(200)}) == 8
