"""edml autopilot against the real broker: drift -> a new champion; no drift -> nothing; a worse candidate is
refused by the gate or retired after its shadow windows; a kill -9 while training -> one publication at
most; a run that fails ends failed; a trigger short of labelled events waits for them; a challenger
without windows is retired at the shadow time limit, its records signed; the moderation pipeline
(binary labels, text): a spam wave's drift alert -> retrained on recorded comments -> promoted.

Traffic is the taxi generator's (small, compressed in event time); the champion v1 learned the city
before traffic slowed (``Drift(slowdown=1.0)``: every trip takes twice as long). The drift alerts
and the live score windows come from the real evaluation dataflow; the live predictions of the
champion and of the shadow challenger are made here by their real SavedModels, as the scorer
would (see test_evaluation.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from bytewax.testing import run_main
from edml.dataflows.evaluation import drift_features, pipeline_flow
from edml.evaluation.config import EvaluationConfig
from edml.evaluation.drift import parse_reference
from edml.model_topic.artifact import read_manifest
from edml.model_topic.history import desired_records, record_history
from edml.model_topic.publisher import publish_model
from edml.model_topic.stores import fetch_artifact
from edml.schemas.records import Prediction
from edml.schemas.serde import prediction_serde
from edml.trainer.generator import DEFAULT_START_MS, Drift, TripColumns, generate_columns
from edml.trainer.moderation.comments import GeneratedComment, Mix, generate_comments
from edml.trainer.records import dropoff_serde, trip_serde
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from edml.autopilot.controller import Controller
from edml.autopilot.events import read_history
from edml.autopilot.progress import load_progress
from edml.cli import app
from edml.core.config import Settings
from edml.kafka.clients import make_producer
from edml.pipelines.autopilot import AutopilotDeclaration
from edml.pipelines.bound import BoundPipeline, bind_pipeline, pipeline_settings
from edml.pipelines.declaration import BUILT_IN_DIR, load_pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

H = 3_600_000
DAY = 24 * H
NAME = "trip-duration"
T0 = DEFAULT_START_MS + 28 * DAY  # traffic starts after the 28 days v1 learned from
REPO = Path(__file__).resolve().parents[2]


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The champion: a small model of the city before traffic slowed."""
    from edml.trainer.train import TrainConfig, train_columns

    cols = generate_columns(3000, seed=1, span_days=28)
    return train_columns(cols, tmp_path_factory.mktemp("v1"), TrainConfig(epochs=2, seed=1)).out_dir


def taxi(**autopilot: object) -> BoundPipeline:
    """The taxi pipeline with a test's [autopilot] table (compressed: small sets, few epochs)."""
    declared = AutopilotDeclaration(**{"trainer": "edml.trainer.from_set:train_trips", "data_window_ms": DAY,
                                       "holdout": 0.25, "min_rows": 200, "shadow_windows": 3, "margin": 0.05,
                                       "cooldown_ms": 0, "params": {"epochs": 2, "seed": 3}, **autopilot})
    return bind_pipeline(dataclasses.replace(load_pipeline("taxi"), autopilot=declared))


def publish_v1(settings: Settings, v1_dir: Path) -> None:
    publish_model(settings, v1_dir, NAME, version="v1")


def produce_trips(settings: Settings, cols: TripColumns) -> None:
    """The trips onto the input topic and their drop-offs onto the label topic."""
    producer = make_producer(settings)
    for trip in cols.trips():
        key = trip.pickup.trip_id.encode()
        producer.produce(settings.topics.trips, key=key, value=trip_serde().encode(trip.pickup))
        producer.produce(settings.topics.labels, key=key, value=dropoff_serde().encode(trip.dropoff))
        producer.poll(0)
    assert producer.flush(30) == 0


def produce_predictions(settings: Settings, cols: TripColumns, model_dir: Path, version: str, role: str) -> None:
    """What the scorer would write for ``version`` (its real SavedModel) on ``cols``' trips."""
    from edml.trainer.predict import predict_rows
    from edml.trainer.train import model_inputs

    predicted = predict_rows(model_dir / "saved_model", model_inputs(cols)).astype(np.float64)
    topic = settings.topics.predictions if role == "champion" else settings.topics.shadow_predictions
    producer = make_producer(settings)
    for trip, p in zip(cols.trips(), predicted, strict=True):
        when = trip.pickup.pickup_time
        producer.produce(topic, key=trip.pickup.trip_id.encode(), value=prediction_serde().encode(
            Prediction(trip.pickup.trip_id, float(p), NAME, version, when, when + 20, 20.0, role)))
        producer.poll(0)
    assert producer.flush(30) == 0


def evaluate(settings: Settings, bound: BoundPipeline) -> None:
    """The evaluation dataflow to the end of its topics: drift against the champion's reference, 4 h windows."""
    record = desired_records(settings)[settings.model_name]
    manifest = read_manifest(fetch_artifact(record.artifact_uri))
    reference = parse_reference(manifest.reference, f"{record.model_name} {record.version}",
                                drift_features(bound).names)
    run_main(pipeline_flow(settings, EvaluationConfig(window_ms=4 * H, lateness_ms=0), bound, reference,
                           tail=False))


def steps(settings: Settings) -> list[str]:
    return [e.step for e in read_history(settings, "taxi")]


def candidates_published(settings: Settings) -> list[str]:
    return [r.version for r in record_history(settings, NAME) if r.version.startswith("ap-")]


# --- drift -> a new champion ------------------------------------------------------------------


def test_drift_trains_gates_shadows_and_promotes_a_new_champion(settings: Settings, v1_dir: Path) -> None:
    started = time.monotonic()
    bound = taxi()
    publish_v1(settings, v1_dir)
    slow_day = generate_columns(2400, seed=11, start_ms=T0, drift=Drift(T0, slowdown=1.0), span_days=1)
    produce_trips(settings, slow_day)
    evaluate(settings, bound)  # the target's distribution moved: a drift alert against v1's reference

    controller = Controller(settings, bound, poll_s=0.1)
    controller.tick()  # trigger, record, train, gate, publish in shadow
    assert steps(settings) == ["trigger", "data", "trained", "gate", "published"], steps(settings)
    progress = load_progress(settings.state_dir)
    candidate = progress.candidate
    desired = desired_records(settings)[NAME]
    assert progress.phase == "shadow" and (desired.version, desired.challengers) == ("v1", [candidate])
    print(f"[autopilot] candidate {candidate} in shadow after {time.monotonic() - started:.1f} s")

    # the next day, the scorer scores with both; their live windows are compared
    next_day = generate_columns(1500, seed=12, start_ms=T0 + DAY, drift=Drift(T0, slowdown=1.0), span_days=1)
    produce_trips(settings, next_day)
    produce_predictions(settings, next_day, v1_dir, "v1", "champion")
    model_dir = settings.state_dir / "autopilot" / "runs" / progress.run_id / "model"
    produce_predictions(settings, next_day, model_dir, candidate, "challenger")
    evaluate(settings, bound)
    controller.tick()

    history = read_history(settings, "taxi")
    for e in history:
        print(f"[autopilot] {e.step:9} {e.reason} {e.figures}")
    assert [e.step for e in history] == ["trigger", "data", "trained", "gate", "published", "windows", "decision"]
    trigger, data, trained, gate, _published, windows, decision = history
    assert trigger.details["kind"] == "drift" and "duration_s" in trigger.reason
    assert data.figures["labelled"] == 2400 and data.figures["train"] == 1800 and data.figures["holdout"] == 600
    assert trained.figures["n_train"] > 0 and trained.figures["mae"] > 0
    assert gate.details["passed"] == "true" and gate.figures["candidate_loss"] < gate.figures["champion_loss"]
    assert windows.figures["windows"] >= 3
    assert decision.details["decision"] == "promoted" and decision.candidate == candidate
    desired = desired_records(settings)[NAME]
    assert desired.version == candidate and "v1" in desired.challengers
    assert {e.run_id for e in history} == {progress.run_id}
    assert load_progress(settings.state_dir).phase == "idle"

    # edml autopilot status prints that history from the topic
    env = {"EDML_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "EDML_TOPIC_PREFIX": settings.topics.trips.removesuffix("trips"), "EDML_STATE_DIR": str(settings.state_dir)}
    shown = CliRunner().invoke(app, ["autopilot", "status", "--pipeline", "taxi"], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"{candidate} promoted over v1" in shown.output and "now: idle" in shown.output
    print(shown.output)
    print(f"[autopilot] drift to promotion in {time.monotonic() - started:.1f} s")


def test_no_drift_no_training(settings: Settings, v1_dir: Path) -> None:
    bound = taxi(error_threshold=10_000.0, error_windows=2)
    publish_v1(settings, v1_dir)
    usual = generate_columns(2400, seed=21, start_ms=T0, span_days=1)  # the city v1 knows
    produce_trips(settings, usual)
    produce_predictions(settings, usual, v1_dir, "v1", "champion")
    evaluate(settings, bound)
    controller = Controller(settings, bound, poll_s=0.1)
    for _ in range(3):
        controller.tick()
    assert steps(settings) == []
    assert load_progress(settings.state_dir).phase == "idle"
    assert candidates_published(settings) == [] and desired_records(settings)[NAME].version == "v1"
    assert not (settings.state_dir / "autopilot" / "runs").exists()
    assert controller.archive.is_dir()  # it did record the traffic


def test_a_candidate_worse_than_the_champion_is_refused_by_the_replay_gate(settings: Settings, v1_dir: Path) -> None:
    bound = taxi(trainer="tests.helpers.autopilot_trainers:train_on_shuffled_labels", schedule_ms=1000,
                 params={"epochs": 2})
    publish_v1(settings, v1_dir)
    produce_trips(settings, generate_columns(1600, seed=31, start_ms=T0, span_days=1))
    controller = Controller(settings, bound, poll_s=0.1)
    controller.tick()
    history = read_history(settings, "taxi")
    assert [e.step for e in history] == ["trigger", "data", "trained", "gate", "decision"]
    gate, decision = history[-2:]
    print(f"[autopilot] {gate.reason}")
    assert history[0].details["kind"] == "schedule"
    assert gate.details["passed"] == "false" and gate.figures["candidate_loss"] > gate.figures["champion_loss"]
    assert decision.details["decision"] == "refused" and "replay gate refused" in decision.reason
    assert candidates_published(settings) == [] and desired_records(settings)[NAME].challengers == []


# --- too few labelled events: the trigger waits for them ----------------------------------------


def test_a_trigger_short_of_labelled_events_waits_for_them_without_a_cool_down(settings: Settings,
                                                                               v1_dir: Path) -> None:
    clock = Clock()
    bound = taxi(schedule_ms=1000, cooldown_ms=H, min_rows=300, tolerance=100.0)
    publish_v1(settings, v1_dir)
    produce_trips(settings, generate_columns(120, seed=81, start_ms=T0, span_days=1))
    controller = Controller(settings, bound, poll_s=0.1, clock=clock)
    controller.tick()
    assert steps(settings) == ["trigger", "data"]
    assert "fewer than min_rows 300: waiting up to 3600 s" in read_history(settings, "taxi")[-1].reason
    assert load_progress(settings.state_dir).phase == "waiting"
    clock.now += 600
    controller.tick()  # nothing new recorded: no new event
    assert steps(settings) == ["trigger", "data"]

    clock.now += 3000  # a cool-down after the trigger, still too few: skipped, and no cool-down starts
    controller.tick()
    assert steps(settings) == ["trigger", "data", "data", "decision"]
    skipped = read_history(settings, "taxi")[-1]
    assert skipped.details["decision"] == "skipped" and "only 120 labelled events" in skipped.reason
    assert "waited 3600 s" in skipped.reason
    assert load_progress(settings.state_dir).last_end_ms is None

    controller.tick()  # the schedule is due again at once: a new run, which waits too
    assert steps(settings)[4:] == ["trigger", "data"]
    produce_trips(settings, generate_columns(400, seed=82, start_ms=T0 + 2 * H, span_days=0.5))
    clock.now += 60
    controller.tick()  # the traffic arrived while the trigger was pending: the run goes on
    history = read_history(settings, "taxi")
    assert [e.step for e in history][4:] == ["trigger", "data", "data", "trained", "gate", "published"]
    assert history[-4].figures["labelled"] == 520 and len({e.run_id for e in history[4:]}) == 1
    assert candidates_published(settings) == [load_progress(settings.state_dir).candidate]


# --- shadow: retired when worse, or past its time limit; signed records ------------------------


def run_folder(settings: Settings) -> Path:
    """The model folder the current run trained."""
    return settings.state_dir / "autopilot" / "runs" / load_progress(settings.state_dir).run_id / "model"


def test_a_candidate_that_passes_the_gate_but_is_worse_in_shadow_is_retired(settings: Settings, v1_dir: Path) -> None:
    # shuffled labels, let through by a lenient gate: the shadow windows are what judges it
    bound = taxi(trainer="tests.helpers.autopilot_trainers:train_on_shuffled_labels", schedule_ms=1000,
                 tolerance=100.0, params={"epochs": 2})
    publish_v1(settings, v1_dir)
    produce_trips(settings, generate_columns(1600, seed=61, start_ms=T0, span_days=1))
    controller = Controller(settings, bound, poll_s=0.1)
    controller.tick()
    assert steps(settings) == ["trigger", "data", "trained", "gate", "published"], steps(settings)
    candidate = load_progress(settings.state_dir).candidate
    assert desired_records(settings)[NAME].challengers == [candidate]

    next_day = generate_columns(1500, seed=62, start_ms=T0 + DAY, span_days=1)
    produce_trips(settings, next_day)
    produce_predictions(settings, next_day, v1_dir, "v1", "champion")
    produce_predictions(settings, next_day, run_folder(settings), candidate, "challenger")
    evaluate(settings, bound)
    controller.tick()

    history = read_history(settings, "taxi")
    assert [e.step for e in history][5:] == ["windows", "decision"], [e.step for e in history]
    windows, decision = history[5:]
    print(f"[autopilot] {decision.reason}")
    assert windows.figures["windows"] >= 3 and windows.figures["candidate_loss"] > windows.figures["champion_loss"]
    assert decision.details["decision"] == "retired" and decision.reason.startswith(f"{candidate} retired: ")
    assert decision.figures["candidate_loss"] > decision.figures["champion_loss"]
    desired = desired_records(settings)[NAME]
    assert (desired.version, desired.challengers) == ("v1", [])  # the scorers stop scoring it in shadow
    assert candidates_published(settings) == [candidate]
    assert load_progress(settings.state_dir).phase == "idle"


def test_a_signed_candidate_without_its_windows_is_retired_at_the_shadow_time_limit(
        settings: Settings, v1_dir: Path, tmp_path: Path) -> None:
    from edml.model_topic.signing import generate_keys, verify_record

    from edml.scoring.trust import record_check

    private, public = generate_keys(tmp_path / "keys")
    signed = dataclasses.replace(settings, model_public_key=str(public))  # what the scorers are given
    publish_model(signed, v1_dir, NAME, version="v1", signing_key=private)
    produce_trips(signed, generate_columns(1600, seed=71, start_ms=T0, span_days=1))
    clock = Clock()
    bound = taxi(schedule_ms=1000, tolerance=100.0, shadow_timeout_ms=2 * H)
    controller = Controller(signed, bound, poll_s=0.1, signing_key=str(private), clock=clock)
    controller.tick()
    published = read_history(signed, "taxi")[-1]
    candidate = load_progress(signed.state_dir).candidate
    assert published.step == "published" and "(signed)" in published.reason

    check = record_check(signed)
    assert check is not None
    written = record_history(signed, NAME)[1:]  # after v1: what the controller wrote
    assert [(r.version, r.challengers) for r in written] == [(candidate, []), ("v1", [candidate])]
    for record in written:
        verify_record(record, public.read_bytes())
        check(record)  # a scorer with model_public_key set accepts it

    clock.now += 2 * 3600 - 60  # no live windows yet (the scorer has not scored it): it goes on waiting
    controller.tick()
    assert read_history(signed, "taxi")[-1].step == "published"
    clock.now += 60
    controller.tick()
    decision = read_history(signed, "taxi")[-1]
    print(f"[autopilot] {decision.reason}")
    assert decision.step == "decision" and decision.details["decision"] == "retired"
    assert f"{candidate} retired: 0 of 3 live windows in 7200 s in shadow" in decision.reason
    assert decision.figures == {"windows": 0.0, "wanted": 3.0}
    champion = desired_records(signed)[NAME]
    assert (champion.version, champion.challengers) == ("v1", [])
    verify_record(champion, public.read_bytes())
    check(champion)
    assert load_progress(signed.state_dir).phase == "idle"


# --- the moderation pipeline: binary labels, text input ------------------------------------------


@pytest.fixture(scope="module")
def weak_moderation_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A moderation champion that saw few comments: the recorded traffic has more to teach."""
    from edml.trainer.moderation.train import train_small

    return train_small(tmp_path_factory.mktemp("moderation-v1"), seed=0, n=300, epochs=1).out_dir


COMMENTS_START = 1_704_067_200_000  # the comment generator's default: a week from 2024-01-01


def test_a_spam_wave_retrains_the_moderation_model_on_recorded_comments_and_decisions(
        settings: Settings, weak_moderation_v1: Path) -> None:
    from edml.trainer.moderation.producing import produce_comments

    from edml.kafka.topics import create_topics

    declared = load_pipeline("moderation")
    assert declared.autopilot is not None  # the built-in declaration, compressed for a test
    bound = bind_pipeline(dataclasses.replace(declared, autopilot=dataclasses.replace(
        declared.autopilot, cooldown_ms=0, min_rows=200, params={"epochs": 3})))
    s = pipeline_settings(settings, bound.pipeline)
    create_topics(s)
    model = s.model_name
    publish_model(s, weak_moderation_v1, model, version="v1", pipeline=bound)
    spam_wave = Mix(spam=0.35)  # far more spam than v1 saw: moderators remove far more comments
    produce_comments(s, generate_comments(1600, seed=91, start_ms=COMMENTS_START, mix=spam_wave), with_decisions=True)
    evaluate(s, bound)  # the removal rate moved: a drift alert against v1's reference

    controller = Controller(s, bound, poll_s=0.1)
    controller.tick()
    history = read_history(s, "moderation")
    for e in history:
        print(f"[autopilot] moderation {e.step:9} {e.reason} {e.figures}")
    assert [e.step for e in history] == ["trigger", "data", "trained", "gate", "published"]
    trigger, data, gate = history[0], history[1], history[3]
    assert trigger.details["kind"] == "drift" and "removed" in trigger.reason
    assert data.figures["labelled"] == 1600 and data.figures["holdout"] == 320
    assert gate.details["passed"] == "true" and gate.figures["candidate_loss"] < gate.figures["champion_loss"]
    candidate = load_progress(s.state_dir).candidate
    desired = desired_records(s)[model]
    assert (desired.version, desired.challengers) == ("v1", [candidate])
    assert [r.version for r in record_history(s, model)] == ["v1", candidate, "v1"]

    # the next day's comments, scored live by both (what the scorer writes), judged by moderators' decisions
    next_day = generate_comments(900, seed=92, start_ms=COMMENTS_START + 7 * DAY, span_days=1, mix=spam_wave)
    produce_comments(s, next_day, with_decisions=True)
    produce_moderation_predictions(s, bound, next_day, weak_moderation_v1, "v1", "champion")
    produce_moderation_predictions(s, bound, next_day, run_folder(s), candidate, "challenger")
    evaluate(s, bound)
    controller.tick()
    history = read_history(s, "moderation")
    windows, decision = history[-2:]
    print(f"[autopilot] moderation {windows.reason}\n[autopilot] moderation {decision.reason}")
    assert [e.step for e in history][5:] == ["windows", "decision"]
    assert windows.figures["windows"] >= 3 and windows.figures["candidate_loss"] < windows.figures["champion_loss"]
    assert decision.details["decision"] == "promoted"
    desired = desired_records(s)[model]
    assert desired.version == candidate and "v1" in desired.challengers


def produce_moderation_predictions(s: Settings, bound: BoundPipeline, comments: list[GeneratedComment], model_dir: Path,
                                   version: str, role: str) -> None:
    """What the scorer would write for ``version`` (its real SavedModel) on ``comments``."""
    from edml.model_topic.artifact import read_model_folder
    from edml.schemas.wire import topic_serdes
    from edml.trainer.moderation.model import predict_texts

    from edml.pipelines.predictions import prediction_schema

    topic = s.topics.predictions if role == "champion" else s.topics.shadow_predictions
    schema = prediction_schema(bound.pipeline, bound.key, read_model_folder(model_dir, s.model_name, version).signature)
    serde = topic_serdes(s).for_schema(topic, schema)
    p_removed = predict_texts(model_dir / "saved_model", [g.comment.text for g in comments])
    producer = make_producer(s)
    for g, p in zip(comments, p_removed, strict=True):
        c = g.comment
        producer.produce(topic, key=c.comment_id.encode(), value=serde.encode({
            "comment_id": c.comment_id, "p_removed": float(p), "model_name": s.model_name, "model_version": version,
            "event_time": c.created_at, "scored_at": c.created_at + 20, "latency_ms": 20.0, "role": role}))
        producer.poll(0)
    assert producer.flush(30) == 0


# --- a run that fails ----------------------------------------------------------------------------


class Clock:
    """The controller's injectable clock: tests move it forward instead of waiting."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _decisions(decision: str) -> float:
    labels = {"pipeline": "taxi", "decision": decision}
    return REGISTRY.get_sample_value("edml_autopilot_decisions_total", labels) or 0.0


@pytest.mark.parametrize(("trainer", "stage", "words"), [
    ("train_and_raise", "training", "RuntimeError: cannot train on 450 rows: the loss is NaN after epoch 1"),
    ("return_an_empty_folder", "training", "CandidateError: tests.helpers.autopilot_trainers:return_an_empty_folder "
                                           "returned PosixPath("),
    ("write_a_corrupt_saved_model", "gate", "ModelUnavailable: "),
])
def test_a_run_that_fails_ends_failed_cools_down_and_leaves_the_champion_alone(
        settings: Settings, v1_dir: Path, trainer: str, stage: str, words: str) -> None:
    publish_v1(settings, v1_dir)
    v1 = desired_records(settings)[NAME]
    produce_trips(settings, generate_columns(600, seed=51, start_ms=T0, span_days=1))
    clock = Clock()
    bound = taxi(trainer=f"tests.helpers.autopilot_trainers:{trainer}", schedule_ms=1000, cooldown_ms=H, params={})
    controller = Controller(settings, bound, poll_s=0.1, clock=clock)
    failed_before = _decisions("failed")
    controller.tick()
    history = read_history(settings, "taxi")
    expected = ["trigger", "data", "failed"] if stage == "training" else ["trigger", "data", "trained", "failed"]
    assert [e.step for e in history] == expected
    failed = history[-1]
    print(f"[autopilot] {failed.reason}")
    assert failed.details == {"decision": "failed", "stage": stage, "error": words.split(":")[0]}
    assert words in failed.reason and failed.reason.endswith("nothing published")
    assert "\n" not in failed.reason and "Traceback" not in failed.reason
    assert _decisions("failed") == failed_before + 1
    progress = load_progress(settings.state_dir)
    assert progress.phase == "idle" and progress.last_end_ms == int(clock.now * 1000)
    assert candidates_published(settings) == [] and desired_records(settings)[NAME] == v1

    clock.now += 30 * 60  # the schedule is due again, but the cool-down holds it
    controller.tick()
    assert len(read_history(settings, "taxi")) == len(history)
    clock.now += 31 * 60  # the cool-down is over: the next run (which fails the same way)
    controller.tick()
    assert [e.step for e in read_history(settings, "taxi")][len(history):][0] == "trigger"
    assert candidates_published(settings) == [] and desired_records(settings)[NAME] == v1


def test_the_loop_outlives_failing_runs(settings: Settings, v1_dir: Path) -> None:
    publish_v1(settings, v1_dir)
    produce_trips(settings, generate_columns(600, seed=52, start_ms=T0, span_days=1))
    bound = taxi(trainer="tests.helpers.autopilot_trainers:train_and_raise", schedule_ms=1, cooldown_ms=0)
    controller = Controller(settings, bound, poll_s=0.05)
    stop = threading.Event()
    loop = threading.Thread(target=controller.run, args=(stop,))
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while steps(settings).count("failed") < 3 and time.monotonic() < deadline and loop.is_alive():
            time.sleep(0.1)
        assert loop.is_alive() and steps(settings).count("failed") >= 3, steps(settings)
    finally:
        stop.set()
        loop.join(30)
    assert not loop.is_alive() and candidates_published(settings) == []


def test_the_loop_outlives_a_tick_that_raises(settings: Settings, v1_dir: Path, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    publish_v1(settings, v1_dir)
    not_a_folder = tmp_path / "archive"
    not_a_folder.write_text("an operator's file where the archive should be")
    controller = Controller(settings, taxi(archive=not_a_folder), poll_s=0.05)
    stop = threading.Event()
    loop = threading.Thread(target=controller.run, args=(stop,))

    def failed_ticks() -> int:
        return sum("autopilot tick of taxi failed" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.ERROR, logger="edml.autopilot"):
        loop.start()
        try:
            deadline = time.monotonic() + 60
            while failed_ticks() < 3 and time.monotonic() < deadline and loop.is_alive():
                time.sleep(0.05)
            assert loop.is_alive() and failed_ticks() >= 3
        finally:
            stop.set()
            loop.join(30)
    assert not loop.is_alive() and steps(settings) == []
    assert any(r.exc_info for r in caplog.records)  # the traceback is in the log


# --- kill -9 while training --------------------------------------------------------------------


def _declare(folder: Path) -> Path:
    """A pipelines folder whose taxi declaration trains slowly, on a schedule, and lets the candidate through."""
    text = (BUILT_IN_DIR / "taxi.toml").read_text().split("[autopilot]")[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "taxi.toml").write_text(text + """[autopilot]
trainer = "tests.helpers.autopilot_trainers:train_slowly"
schedule_s = 1
cooldown_s = 3600
data_window_s = 86400
min_rows = 200
tolerance = 100.0
shadow_windows = 3

[autopilot.params]
epochs = 2
pause_s = 3.0
""")
    return folder


def _start(settings: Settings, pipelines: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "EDML_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "EDML_TOPIC_PREFIX": settings.topics.trips.removesuffix("trips"), "EDML_STATE_DIR": str(settings.state_dir),
           "EDML_PIPELINES_DIR": str(pipelines), "PYTHONPATH": str(REPO)}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "edml.cli", "autopilot", "run", "--pipeline", "taxi",
                                 "--poll", "0.2"], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait(condition, what: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def test_a_kill_9_while_training_publishes_the_candidate_once(settings: Settings, v1_dir: Path,
                                                             tmp_path: Path) -> None:
    publish_v1(settings, v1_dir)
    produce_trips(settings, generate_columns(1600, seed=41, start_ms=T0, span_days=1))
    pipelines, log = _declare(tmp_path / "pipelines"), tmp_path / "autopilot.log"
    first = _start(settings, pipelines, log)
    try:
        _wait(lambda: "data" in steps(settings), "the first run reached its training", first, log)
        os.killpg(first.pid, signal.SIGKILL)  # in the trainer's pause or its epochs: nothing published yet
        first.wait(10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    killed = load_progress(settings.state_dir)
    assert killed.phase == "training" and candidates_published(settings) == []

    second = _start(settings, pipelines, log)
    try:
        _wait(lambda: load_progress(settings.state_dir).phase == "shadow", "the restarted run published", second, log)
        time.sleep(1.0)  # a few more ticks: it waits for windows, it does not publish again
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    history = read_history(settings, "taxi")
    print("[autopilot] " + " ".join(e.step for e in history))
    after = load_progress(settings.state_dir)
    assert after.run_id == killed.run_id and after.attempt == 2
    assert candidates_published(settings) == [after.candidate]  # exactly one publication
    assert [e.step for e in history].count("published") == 1 and "resumed" in [e.step for e in history]
    assert desired_records(settings)[NAME].challengers == [after.candidate]
