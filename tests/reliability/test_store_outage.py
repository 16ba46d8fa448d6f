"""The artifact store (GCS, through its emulator) is down during a model swap.

The old model keeps serving, the scorer retries with growing back-off (visible as "retrying"
events on the model-status topic), and the new model activates once the store is back.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from pathlib import Path

import pytest
from edml.model_topic.artifact import pack_artifact
from edml.model_topic.publisher import publish_record, record_from_manifest
from edml.model_topic.stores import open_store
from edml.trainer.generator import generate_trips

from edml.core.config import Settings
from tests.helpers.gcs import GcsEmulator
from tests.integration.scorer_process import ScorerProcess, predictions, statuses
from tests.reliability.harness import NAME, BackgroundTrips, TinyModels, publish, running, wait_for, wait_status
from tests.reliability.tally import Tally

pytestmark = pytest.mark.kafka
OUTAGE_S = 10.0


def test_store_outage_during_swap_keeps_old_model_then_activates_new(
    settings: Settings, tiny_models: TinyModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gcs = GcsEmulator.start(tmp_path / "gcs.log", data_dir=tmp_path / "gcs-data")
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.host)
        settings = dataclasses.replace(settings, artifact_store=gcs.store_uri(f"outage-{uuid.uuid4().hex[:6]}"))
        publish(settings, tiny_models.v1, "v1")
        # the scorer gives up on each store request after 1 s, then backs off
        scorer = ScorerProcess(settings, env={"STORAGE_EMULATOR_HOST": gcs.host, "EDML_STORE_TIMEOUT_S": "1"})
        with running(scorer):
            scorer.wait_healthy(120)
            trips = BackgroundTrips(settings, generate_trips(2500, seed=31), rate=100).start()
            # v2's artifact is stored, then the store goes down, then v2's record is published
            artifact = pack_artifact(tiny_models.v2, NAME, "v2")
            uri = open_store(settings.artifact_store_uri).put(NAME, "v2", artifact.data)
            gcs.down()
            down_at = time.monotonic()
            publish_record(settings, record_from_manifest(artifact.manifest, uri, artifact.sha256,
                                                          len(artifact.data)))
            wait_status(settings, "v2", "retrying", 60, scorer.log())
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            during = predictions(settings)
            gcs.up()
            print(f"\n[store outage] store down for {time.monotonic() - down_at:.1f}s")
            wait_status(settings, "v2", "active", 60, scorer.log())
            trips.join()
            wait_for(lambda: len({p.trip_id for p in predictions(settings)}) >= len(trips.ids), 120, scorer)
    finally:
        gcs.down()
    tally = Tally.read("store outage", settings, trips.ids).print()
    retries = [s for s in statuses(settings) if s.version == "v2" and s.status == "retrying"]
    backoffs = [float(m.group(1)) for s in retries if (m := re.search(r"next in ([\d.]+)s", s.reason))]
    for s in retries:
        print(f"  status v2 retrying: {s.reason}")
    v1_during = sum(p.model_version == "v1" for p in during)
    print(f"[store outage] predictions while the store was down={len(during)} (v1={v1_during}); "
          f"retries={len(retries)} back-offs={backoffs}")
    tally.assert_nothing_lost()
    assert {p.model_version for p in during} == {"v1"}, "only the old model serves while v2 cannot be fetched"
    assert v1_during > 0
    assert len(retries) >= 2 and backoffs == sorted(backoffs) and backoffs[-1] > backoffs[0]
    assert "unavailable" in retries[0].reason
    assert {p.model_version for p in tally.predictions} == {"v1", "v2"}
