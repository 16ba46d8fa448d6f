"""Only published, intact models serve: hostile artifacts and untrusted records are rejected.

One scorer with a model public key serves v1 while trips flow. Then, one record each:

* records the key does not vouch for: unsigned, signed by another key, altered after signing,
  a garbage signature;
* records signed with the right key (a compromised or buggy CI) whose artifacts are hostile:
  path traversal, absolute path, symbolic and hard links, a device, a decompression bomb,
  a sha256 mismatch, bytes that are not gzip, an artifact of another version, a missing
  artifact, URIs outside the store (``/etc/passwd``, ``/dev/zero``, ``..``), a SavedModel
  with an unexpected signature, one that returns NaN.

Each must be rejected with its reason on the model-status topic while v1 keeps serving;
nothing may escape the unpack folder; a good signed v2 then activates.
"""

from __future__ import annotations

import dataclasses
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from edml.model_topic.artifact import Manifest, pack_folder, read_model_folder, sha256_hex
from edml.model_topic.publisher import publish_record, record_from_manifest
from edml.model_topic.signing import generate_keys, read_key, sign_record
from edml.model_topic.stores import open_store
from edml.schemas.records import ModelRecord
from edml.trainer.generator import generate_trips

from edml.core.config import Settings
from tests.integration.scorer_process import ScorerProcess, predictions, statuses
from tests.reliability import hostile
from tests.reliability.harness import NAME, BackgroundTrips, TinyModels, publish, running, wait_for, wait_status
from tests.reliability.tally import Tally

pytestmark = pytest.mark.kafka


@dataclass(frozen=True)
class Hostile:
    """A record to publish and the words its rejection reason must contain."""

    version: str
    record: ModelRecord
    reason: str


class Forger:
    """Builds records for artifacts it stores itself, signed with the trusted key unless told otherwise."""

    def __init__(self, settings: Settings, good_dir: Path, private_key: bytes) -> None:
        self.store = open_store(settings.artifact_store_uri)
        self.good_dir = good_dir
        self.private_key = private_key
        self._manifests: dict[Path, Manifest] = {}

    def manifest(self, version: str, model_dir: Path | None = None) -> Manifest:
        """The manifest of ``model_dir`` (default: the good model) as ``version``."""
        model_dir = model_dir or self.good_dir
        if model_dir not in self._manifests:  # reading it loads the SavedModel: once per folder
            self._manifests[model_dir] = read_model_folder(model_dir, NAME, "base")
        return dataclasses.replace(self._manifests[model_dir], version=version)

    def good_artifact(self, version: str, model_dir: Path | None = None) -> bytes:
        """A well-formed artifact of ``version``."""
        return pack_folder((model_dir or self.good_dir) / "saved_model", self.manifest(version, model_dir))

    def record(self, version: str, data: bytes, *, model_dir: Path | None = None, sha256: str | None = None,
               uri: str | None = None, store: bool = True) -> ModelRecord:
        """A signed record for ``data`` stored as ``version`` (manifest from ``model_dir``)."""
        if store:
            uri = self.store.put(NAME, version, data)
        record = record_from_manifest(self.manifest(version, model_dir), uri or self.store.artifact_uri(NAME, version),
                                      sha256 or sha256_hex(data), len(data))
        return sign_record(record, self.private_key)


def hostile_records(forger: Forger, tiny_models: TinyModels, outside: Path, other_key: bytes) -> list[Hostile]:
    """Every record the scorer must refuse."""
    good = forger.good_artifact

    def add(version: str, *extra: tuple[tarfile.TarInfo, bytes]) -> ModelRecord:
        return forger.record(version, hostile.with_entries(good(version), *extra))

    unsigned = dataclasses.replace(forger.record("u1-unsigned", good("u1-unsigned")), signature_ed25519=None)
    other = sign_record(dataclasses.replace(unsigned, version="u2-other-key",
                                            artifact_uri=forger.store.put(NAME, "u2-other-key", good("u2-other-key"))),
                        other_key)
    tampered = forger.record("u3-tampered", good("u3-tampered"))
    tampered = dataclasses.replace(tampered, metrics={**tampered.metrics, "mae": 1.0})
    garbage = dataclasses.replace(forger.record("u4-garbage-sig", good("u4-garbage-sig")),
                                  signature_ed25519=b"\x00" * 64)
    missing_uri = forger.store.artifact_uri(NAME, "h12-missing")
    return [
        Hostile("u1-unsigned", unsigned, "is not signed"),
        Hostile("u2-other-key", other, "does not verify"),
        Hostile("u3-tampered", tampered, "does not verify"),
        Hostile("u4-garbage-sig", garbage, "does not verify"),
        Hostile("h01-traversal", add("h01-traversal", hostile.entry("saved_model/../../../escaped-traversal", b"x")),
                "'..' component"),
        Hostile("h02-absolute", add("h02-absolute", hostile.entry(str(outside / "escaped-absolute"), b"x")),
                "absolute path"),
        Hostile("h03-symlink", add("h03-symlink", hostile.entry("saved_model/variables/passwd", kind=tarfile.SYMTYPE,
                                                                linkname="/etc/passwd")), "symbolic link"),
        Hostile("h04-symlink-dir", add("h04-symlink-dir",
                                       hostile.entry("saved_model/out", kind=tarfile.SYMTYPE, linkname=str(outside)),
                                       hostile.entry("saved_model/out/escaped-through-link", b"x")), "symbolic link"),
        Hostile("h05-hardlink", add("h05-hardlink", hostile.entry("saved_model/passwd", kind=tarfile.LNKTYPE,
                                                                  linkname="/etc/passwd")), "hard link"),
        Hostile("h06-device", add("h06-device", hostile.entry("saved_model/null", kind=tarfile.CHRTYPE)),
                "device or fifo"),
        Hostile("h07-bomb", forger.record("h07-bomb", hostile.bomb(good("h07-bomb"))), "unpacks to more than"),
        Hostile("h08-sha256", forger.record("h08-sha256", good("h08-sha256"), sha256=sha256_hex(b"another")),
                "sha256 mismatch"),
        Hostile("h09-not-gzip", forger.record("h09-not-gzip", b"PK\x03\x04 not a tar.gz" * 100), "not gzip"),
        Hostile("h10-other-version", forger.record("h10-other-version", good("v1")), "the record names"),
        Hostile("h11-outside-store", forger.record("h11-outside-store", b"", uri="file:///etc/passwd", store=False),
                "outside the artifact store"),
        Hostile("h11b-dev-zero", forger.record("h11b-dev-zero", b"", uri="file:///dev/zero", store=False),
                "outside the artifact store"),
        Hostile("h11c-uri-traversal", forger.record(
            "h11c-uri-traversal", b"", uri=forger.store.uri + "/../../../../../../etc/passwd", store=False),
            "outside the artifact store"),
        Hostile("h12-missing", forger.record("h12-missing", b"", uri=missing_uri, store=False), "artifact missing"),
        Hostile("h13-wrong-signature", forger.record(
            "h13-wrong-signature", good("h13-wrong-signature", tiny_models.wrong_signature),
            model_dir=tiny_models.wrong_signature), "model input zone is fed by no field"),
        Hostile("h14-nan", forger.record("h14-nan", good("h14-nan", tiny_models.nan), model_dir=tiny_models.nan),
                "NaN"),
    ]


def test_untrusted_records_and_hostile_artifacts_are_rejected_while_v1_serves(
    settings: Settings, tiny_models: TinyModels, tmp_path: Path
) -> None:
    private_path, public_path = generate_keys(tmp_path / "keys")
    other_private, _ = generate_keys(tmp_path / "other-keys")
    private = read_key(private_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    publish(settings, tiny_models.v1, "v1", signing_key=private_path)
    forger = Forger(settings, tiny_models.v1, private)
    cases = hostile_records(forger, tiny_models, outside, read_key(other_private))
    v2 = forger.record("v2", forger.good_artifact("v2", tiny_models.v2), model_dir=tiny_models.v2)

    scorer = ScorerProcess(settings, env={"EDML_MODEL_PUBLIC_KEY": str(public_path)})
    with running(scorer):
        scorer.wait_healthy(120)
        trips = BackgroundTrips(settings, generate_trips(2500, seed=51), rate=100).start()
        wait_for(lambda: len(predictions(settings)) >= 100, 60, scorer)
        for case in cases:
            publish_record(settings, case.record)
        reasons = {c.version: wait_status(settings, c.version, "rejected", 60, scorer.log()) for c in cases}
        before_v2 = predictions(settings)
        publish_record(settings, v2)
        wait_status(settings, "v2", "active", 60, scorer.log())
        trips.join()
        wait_for(lambda: len({p.trip_id for p in predictions(settings)}) >= len(trips.ids), 120, scorer)
        alive = scorer.proc.poll() is None
    tally = Tally.read("trusted models", settings, trips.ids).print()
    print(f"[trusted models] records published={len(cases) + 2} rejected={len(reasons)} "
          f"predictions before v2={len(before_v2)} (versions {sorted({p.model_version for p in before_v2})})")
    for case in cases:
        print(f"  {case.version:20s} rejected: {reasons[case.version]}")

    assert alive
    tally.assert_nothing_lost()
    for case in cases:
        assert case.reason in reasons[case.version], (case.version, reasons[case.version])
    active = [s.version for s in statuses(settings) if s.status == "active"]
    assert active == ["v1", "v2"], active
    assert {p.model_version for p in before_v2} == {"v1"}
    assert {p.model_version for p in tally.predictions} == {"v1", "v2"}
    escaped = [p for p in tmp_path.rglob("escaped*")]
    links = [p for p in settings.state_dir.rglob("*") if p.is_symlink()]
    assert not escaped and not links, (escaped, links)
