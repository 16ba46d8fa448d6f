"""Faulty models and faulty model records never stop the scorer.

``test_faulty_models_are_isolated_and_quarantined``: one scorer serves v1, then models whose
faults the golden rows do not show, each published with ``--force`` as an operator would:

* a model that raises for batches holding a trip over 20 km (an exception class of fault);
* a model that returns NaN or inf for crowded trips (non-finite outputs);
* a model whose output length is fixed at 16 rows (a wrong-length output for larger batches);
* a hand-made record of a model with a two-column output, which the publish gate refuses.

Every trip sent must end as a finite prediction or a dead letter naming the model version
(``model-error`` / ``model-output``); the first two models are quarantined (status rejected,
the process falls back to the last version that served well); the scorer never exits. After
a restart whose desired record is the refused one, the last known good version serves.

``test_faulty_records_are_rejected_and_the_last_good_version_serves``: records with a wrong
sha256, a key that is not their model name, an over-long version, an artifact that is a fifo;
a restart whose newest record is rejected; disk use of rejected and retired versions; and a
rollback to a version whose newest record scorers refused.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from edml.model_topic.artifact import pack_folder, read_model_folder, sha256_hex
from edml.model_topic.publisher import publish_record, record_from_manifest, rollback
from edml.model_topic.stores import open_store
from edml.schemas.records import ModelRecord
from edml.schemas.serde import model_record_serde
from edml.trainer.generator import generate_trips
from edml.trainer.producing import produce_trips

from edml.core.config import Settings
from edml.kafka.clients import make_producer
from tests.helpers.savedmodels import FIXED_16, NAN_CROWDED, RAISES_FAR, TWO_COLUMNS, write_model_dir
from tests.integration.scorer_process import ScorerProcess, dead_letters, predictions, statuses
from tests.integration.test_publish import edml
from tests.reliability.harness import NAME, TinyModels, publish, running, wait_for, wait_status

pytestmark = pytest.mark.kafka

# a low rate over a short window, so that a quarantine shows within a few hundred trips
FAULT_ENV = {"EDML_MODEL_FAILURE_RATE": "0.02", "EDML_MODEL_FAILURE_WINDOW": "400"}


def hand_made_record(settings: Settings, model_dir: Path, version: str, *, sha256: str | None = None,
                     uri: str | None = None) -> ModelRecord:
    """A record for ``model_dir`` stored as ``version``, written without the publish gate."""
    manifest = dataclasses.replace(read_model_folder(model_dir, NAME, "base"), version=version)
    data = pack_folder(model_dir / "saved_model", manifest)
    stored = open_store(settings.artifact_store_uri).put(NAME, version, data) if uri is None else uri
    return record_from_manifest(manifest, stored, sha256 or sha256_hex(data), len(data))


def produce_keyed(settings: Settings, key: str, record: ModelRecord) -> None:
    """Produce ``record`` under ``key`` on the model topic (what a buggy publisher could do)."""
    producer = make_producer(settings)
    producer.produce(settings.topics.models, key=key.encode(), value=model_record_serde().encode(record))
    assert producer.flush(30) == 0


def accounted(settings: Settings, ids: list[str]) -> tuple[set[str], set[str]]:
    """(trips of ``ids`` with a prediction, trips of ``ids`` with a model dead letter)."""
    wanted = set(ids)
    predicted = {p.trip_id for p in predictions(settings)} & wanted
    dead = {d.key.decode() for d in dead_letters(settings) if d.error_kind.startswith("model-")} & wanted
    return predicted, dead


def send_and_settle(settings: Settings, scorer: ScorerProcess, seed: int, n: int) -> list[str]:
    """Send ``n`` trips and wait until each has a prediction or a model dead letter."""
    trips = generate_trips(n, seed=seed)
    produce_trips(settings, trips, rate=None)
    ids = [t.pickup.trip_id for t in trips]

    def settled() -> bool:
        predicted, dead = accounted(settings, ids)
        return len(predicted | dead) == len(ids)

    wait_for(settled, 180, scorer, f"{n} trips (seed {seed}) predicted or dead-lettered")
    return ids


def test_faulty_models_are_isolated_and_quarantined(settings: Settings, tiny_models: TinyModels,
                                                    tmp_path: Path) -> None:
    models = {kind: write_model_dir(tmp_path / kind, kind=kind) for kind in (RAISES_FAR, NAN_CROWDED, FIXED_16,
                                                                                TWO_COLUMNS)}
    publish(settings, tiny_models.v1, "v1")
    scorer = ScorerProcess(settings, env=FAULT_ENV)
    sent: list[str] = []
    with running(scorer):
        scorer.wait_healthy(120)
        sent += send_and_settle(settings, scorer, seed=61, n=300)
        phases = [("v2-raises", RAISES_FAR, 62), ("v3-nan", NAN_CROWDED, 63)]
        for version, kind, seed in phases:
            publish(settings, models[kind], version)
            wait_status(settings, version, "active", 90, scorer.log())
            sent += send_and_settle(settings, scorer, seed=seed, n=1500)
            wait_status(settings, version, "rejected", 60, scorer.log())
        publish(settings, models[FIXED_16], "v4-fixed16")
        wait_status(settings, "v4-fixed16", "active", 90, scorer.log())
        fixed_ids = send_and_settle(settings, scorer, seed=64, n=2000)
        sent += fixed_ids
        publish_record(settings, hand_made_record(settings, models[TWO_COLUMNS], "v5-two-columns"))
        two_columns = wait_status(settings, "v5-two-columns", "rejected", 90, scorer.log())
        alive = scorer.proc.poll() is None
    restarted = ScorerProcess(settings, env=FAULT_ENV)
    with running(restarted):
        restarted.wait_healthy(120)
        after_ids = send_and_settle(settings, restarted, seed=65, n=300)
        sent += after_ids
        restarted_alive = restarted.proc.poll() is None

    preds = predictions(settings)
    by_version: dict[str, int] = {}
    for p in preds:
        by_version[p.model_version] = by_version.get(p.model_version, 0) + 1
    model_dead = [d for d in dead_letters(settings) if d.error_kind.startswith("model-")]
    dead_by: dict[tuple[str, str], int] = {}
    for d in model_dead:
        key = (d.message.split(":")[0], d.error_kind)
        dead_by[key] = dead_by.get(key, 0) + 1
    predicted, dead = accounted(settings, sent)
    rejected = {s.version: s.reason for s in statuses(settings) if s.status == "rejected"}
    nonfinite = sum(not np.isfinite(p.predicted_duration_s) for p in preds)
    fixed_by = {p.model_version for p in preds if p.trip_id in set(fixed_ids)}
    after_by = {p.model_version for p in preds if p.trip_id in set(after_ids)}
    print(f"[model faults] sent={len(sent)} predicted={len(predicted)} model_dead_letters={len(dead)} "
          f"lost={len(set(sent) - predicted - dead)} non_finite_predictions={nonfinite}")
    print(f"[model faults] predictions by version {dict(sorted(by_version.items()))}")
    print(f"[model faults] model dead letters by (model version, kind) {dict(sorted(dead_by.items()))}")
    for version in ("v2-raises", "v3-nan", "v5-two-columns"):
        print(f"  {version:16s} rejected: {rejected.get(version, '-')}")
    print(f"[model faults] fixed-16 model scored its trips with {sorted(fixed_by)}; after the restart "
          f"(desired v5-two-columns) {sorted(after_by)} served")

    assert alive and restarted_alive
    assert set(sent) == predicted | dead, "every trip is predicted or dead-lettered"
    assert nonfinite == 0
    assert "quarantined" in rejected["v2-raises"] and "quarantined" in rejected["v3-nan"]
    assert dead_by.get((f"{NAME} v2-raises", "model-error"), 0) > 0
    assert dead_by.get((f"{NAME} v3-nan", "model-output"), 0) > 0
    assert all(version in ("v2-raises", "v3-nan") for version, _ in
               ((k[0].split(" ")[1], k[1]) for k in dead_by)), dead_by
    assert "shape" in two_columns, two_columns
    assert fixed_by == {"v4-fixed16"}, "larger batches are scored by halves, not lost"
    assert after_by == {"v4-fixed16"}, "the last version that served well serves after the restart"
    serving = [s for s in statuses(settings) if s.status == "serving"]
    assert serving and "desired v5-two-columns" in serving[-1].reason


def test_faulty_records_are_rejected_and_the_last_good_version_serves(settings: Settings, tiny_models: TinyModels,
                                                                      tmp_path: Path) -> None:
    store = open_store(settings.artifact_store_uri)
    publish(settings, tiny_models.v1, "v1")
    scorer = ScorerProcess(settings, args=["--keep-versions", "1"])
    unpacked = settings.state_dir / "models" / "process-0" / NAME
    with running(scorer):
        scorer.wait_healthy(120)
        good_v2 = hand_made_record(settings, tiny_models.v2, "v2-bad-sha")
        publish_record(settings, dataclasses.replace(good_v2, sha256=sha256_hex(b"another")))
        produce_keyed(settings, "other-model", hand_made_record(settings, tiny_models.v2, "v3-other-key"))
        long_version = "v" * 300
        publish_record(settings, dataclasses.replace(good_v2, version=long_version))
        fifo = Path(store.artifact_uri(NAME, "v4-fifo").removeprefix("file://"))
        os.mkfifo(fifo)
        publish_record(settings, dataclasses.replace(good_v2, version="v4-fifo", artifact_uri=f"file://{fifo}"))
        reasons = {v: wait_status(settings, v, "rejected", 60, scorer.log())
                   for v in ("v2-bad-sha", "v3-other-key", long_version[:200], "v4-fifo")}
        v5 = publish(settings, tiny_models.v2, "v5")
        wait_status(settings, "v5", "active", 90, scorer.log())
        publish_record(settings, dataclasses.replace(hand_made_record(settings, tiny_models.v1, "v6-bad-sha"),
                                                     sha256=sha256_hex(b"another")))
        reasons["v6-bad-sha"] = wait_status(settings, "v6-bad-sha", "rejected", 60, scorer.log())
        folders = sorted(p.name for p in unpacked.iterdir())
        restarts = scorer.log(None).count("model subscriber failed")
    v3_active = [s for s in statuses(settings) if s.version == "v3-other-key" and s.status == "active"]

    restarted = ScorerProcess(settings)
    with running(restarted):
        restarted.wait_healthy(120)
        trips = generate_trips(200, seed=71)
        produce_trips(settings, trips, rate=None)
        ids = {t.pickup.trip_id for t in trips}
        wait_for(lambda: ids <= {p.trip_id for p in predictions(settings)}, 120, restarted)
    served_after = {p.model_version for p in predictions(settings) if p.trip_id in ids}
    serving = [s for s in statuses(settings) if s.status == "serving"][-1]
    code, status_table, _ = edml(settings, "models", "status")
    row = next(line.split() for line in status_table.splitlines() if line.startswith(serving.process))

    # a record named v5 whose artifact is v1's (sha256 of v1): scorers refuse it; rollback must not pick it
    v1_uri = store.artifact_uri(NAME, "v1")
    publish_record(settings, dataclasses.replace(v5, artifact_uri=v1_uri,
                                                 sha256=sha256_hex(store.get(v1_uri))))
    rolled = rollback(settings, NAME, "v5")

    print(f"[model records] rejected={len(reasons)} subscriber restarts={restarts} "
          f"unpacked folders while v5 serves={folders}")
    for version, reason in reasons.items():
        print(f"  {version[:24]:24s} rejected: {reason}")
    print(f"[model records] after a restart with v6-bad-sha desired: {len(ids)} trips scored by "
          f"{sorted(served_after)}; status {serving.status} {serving.version} ({serving.reason})")
    print(f"[model records] edml models status: {' '.join(row)}")
    print(f"[model records] rollback --to v5 published sha256 {rolled.sha256[:12]} (accepted v5 {v5.sha256[:12]})")

    assert "sha256 mismatch" in reasons["v2-bad-sha"]
    assert "key" in reasons["v3-other-key"] and not v3_active
    assert "version" in reasons[long_version[:200]]
    assert "not a regular file" in reasons["v4-fifo"]
    assert "sha256 mismatch" in reasons["v6-bad-sha"]
    assert restarts == 0
    assert folders == ["v5"], "rejected artifacts and versions no longer kept leave no files"
    assert served_after == {"v5"}
    assert serving.version == "v5" and "desired v6-bad-sha" in serving.reason
    assert code == 0 and row[1:4] == [NAME, "v6-bad-sha", "v5"], row
    assert rolled.sha256 == v5.sha256 and rolled.artifact_uri == v5.artifact_uri
