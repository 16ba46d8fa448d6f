"""Publishing models onto the compacted model topic, against the real broker and real stores."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from edml.model_topic.artifact import safe_unpack, verify_sha256
from edml.model_topic.history import desired_records, read_topic, record_history
from edml.model_topic.publisher import publish_model, retire_model
from edml.model_topic.signing import SignatureInvalid, generate_keys, verify_record
from edml.model_topic.stores import fetch_artifact, open_store
from edml.model_topic.versioning import parse_version
from edml.schemas.records import ModelRecord, ModelStatus
from edml.schemas.serde import model_record_serde, model_status_serde
from typer.testing import CliRunner

from edml.cli import app
from edml.core.config import Settings
from edml.kafka.clients import make_producer
from tests.helpers.savedmodels import NAN, WRONG_DTYPE, WRONG_SIGNATURE, write_model_dir
from tests.integration.conftest import GcsEmulator

pytestmark = pytest.mark.kafka

NAME = "trip-duration"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Models:
    good: Path  # mae 180
    better: Path  # mae 170, other weights
    worse: Path  # mae 300
    wrong_signature: Path
    wrong_dtype: Path
    nan: Path
    broken: Path  # saved_model.pb is garbage


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("models")
    broken = write_model_dir(root / "broken", mae=150.0)
    (broken / "saved_model" / "saved_model.pb").write_bytes(b"\x08garbage")
    return Models(
        good=write_model_dir(root / "good", mae=180.0),
        better=write_model_dir(root / "better", mae=170.0, base=100.0, per_km=140.0),
        worse=write_model_dir(root / "worse", mae=300.0, base=90.0),
        wrong_signature=write_model_dir(root / "wrong-sig", kind=WRONG_SIGNATURE),
        wrong_dtype=write_model_dir(root / "wrong-dtype", kind=WRONG_DTYPE),
        nan=write_model_dir(root / "nan", kind=NAN),
        broken=broken,
    )


def cli_env(settings: Settings, store: str | None = None) -> dict[str, str]:
    """Environment that points the CLI at the test's broker, topics and store."""
    prefix = settings.topics.models.removesuffix("models")
    return {
        "EDML_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "EDML_TOPIC_PREFIX": prefix,
        "EDML_STATE_DIR": str(settings.state_dir),
        "EDML_ARTIFACT_STORE": store or settings.artifact_store_uri,
        "EDML_CONFIG": "",
        "EDML_MODEL_SIGNING_KEY": "",
    }


def edml(settings: Settings, *args: str, store: str | None = None) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr)."""
    env = {k: v for k, v in cli_env(settings, store).items() if v}
    saved = {k: os.environ.pop(k) for k in ("EDML_CONFIG", "EDML_MODEL_SIGNING_KEY") if k in os.environ}
    try:
        result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    finally:
        os.environ.update(saved)
    return result.exit_code, result.stdout, result.stderr


def topic_records(settings: Settings) -> list[tuple[bytes | None, ModelRecord | None]]:
    """Every (key, record or None for a tombstone) on the model topic."""
    serde = model_record_serde()
    return [(m.key, serde.decode(m.value) if m.value is not None else None)
            for m in read_topic(settings, settings.topics.models)]


def test_publish_to_file_store_then_second_publish_is_the_latest_record(settings: Settings, models: Models) -> None:
    first = publish_model(settings, models.good, NAME)
    assert parse_version(first.version) is not None and first.version.endswith("-1")
    assert first.artifact_uri.startswith("file://") and first.git_sha
    data = fetch_artifact(first.artifact_uri)
    verify_sha256(data, first.sha256)
    assert first.size_bytes == len(data)
    assert first.metrics["mae"] == 180.0 and first.trainer_params["epochs"] == "1"
    assert first.data_window_end == 1_700_000_000_000
    assert [s.name for s in first.signature.outputs] == ["duration_s"]

    second = publish_model(settings, models.better, NAME)
    assert second.version.endswith("-2") and second.version.rsplit("-", 1)[0] == first.version.rsplit("-", 1)[0]
    on_topic = topic_records(settings)
    assert [k for k, _ in on_topic] == [NAME.encode(), NAME.encode()]
    assert on_topic[-1][1] == second
    assert desired_records(settings)[NAME].version == second.version
    assert [r.version for r in record_history(settings, NAME)] == [first.version, second.version]
    manifest = safe_unpack(fetch_artifact(second.artifact_uri), settings.state_dir / "unpacked")
    assert manifest.version == second.version and manifest.metrics["mae"] == 170.0


def test_a_trained_model_passes_the_gate_and_round_trips(settings: Settings, trained_model_dir: Path) -> None:
    record = publish_model(settings, trained_model_dir, NAME)
    data = fetch_artifact(record.artifact_uri)
    verify_sha256(data, record.sha256)
    manifest = safe_unpack(data, settings.state_dir / "unpacked")
    assert manifest.golden_outputs and manifest.reference
    assert record.data_window_start is not None and record.trainer_params
    assert desired_records(settings)[NAME] == record


def test_publish_to_gcs_through_the_emulator(settings: Settings, models: Models, gcs_emulator: GcsEmulator) -> None:
    store = gcs_emulator.store_uri(f"publish-{settings.topics.models}")
    code, out, err = edml(settings, "publish", "--model-dir", str(models.good), "--name", NAME, store=store)
    assert code == 0, err
    version = out.strip()
    record = desired_records(settings)[NAME]
    assert record.version == version
    assert record.artifact_uri == f"{store}/{NAME}/{version}.tar.gz"
    verify_sha256(open_store(store).get(record.artifact_uri), record.sha256)
    code, out, _ = edml(settings, "publish", "--model-dir", str(models.better), "--name", NAME, store=store)
    assert code == 0
    assert [r.version for _, r in topic_records(settings)] == [version, out.strip()]
    assert open_store(store).versions(NAME) == [version, out.strip()]


def _refused(settings: Settings, *args: str, store: str | None = None) -> str:
    before = topic_records(settings)
    code, out, err = edml(settings, *args, store=store)
    assert code != 0, out
    assert out == ""
    reason = err.strip().splitlines()
    assert len(reason) == 1, err
    assert topic_records(settings) == before  # the topic is unchanged
    return reason[0]


def test_refusals_leave_the_topic_unchanged(settings: Settings, models: Models, tmp_path: Path) -> None:
    args = ("publish", "--name", NAME, "--model-dir")
    code, out, _ = edml(settings, *args, str(models.good), "--version", "1.0.0-manual-1")
    assert (code, out.strip()) == (0, "1.0.0-manual-1")

    reason = _refused(settings, *args, str(models.better), "--version", "1.0.0-manual-1")
    assert "already exists" in reason
    reason = _refused(settings, *args, str(models.broken))
    assert "cannot load SavedModel" in reason
    reason = _refused(settings, *args, str(tmp_path / "nothing-here"))
    assert "does not exist" in reason
    reason = _refused(settings, *args, str(models.wrong_signature))
    assert "the pipeline cannot feed this model: model input zone is fed by no field" in reason
    reason = _refused(settings, *args, str(models.wrong_dtype))
    assert "model input trip_distance_km is string, which field trip_distance_km (double) cannot feed" in reason
    reason = _refused(settings, *args, str(models.nan))
    assert "non-finite" in reason
    reason = _refused(settings, *args, str(models.worse))
    assert "mae 300.000 is 66.7% worse than 1.0.0-manual-1's 180.000" in reason
    # a looser tolerance, or --force, lets the worse model through
    code, out, err = edml(settings, *args, str(models.worse), "--force")
    assert code == 0, err
    assert desired_records(settings)[NAME].version == out.strip()
    # nothing of the refused models reached the store either
    assert set(open_store(settings.artifact_store_uri).versions(NAME)) == {"1.0.0-manual-1", out.strip()}


def test_unreachable_stores_leave_the_topic_unchanged(settings: Settings, models: Models, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    reason = _refused(settings, "publish", "--model-dir", str(models.good), store=f"file://{blocker}/store")
    assert "a-file/store" in reason and "Not a directory" in reason
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ.update(STORAGE_EMULATOR_HOST="http://127.0.0.1:9", EDML_STORE_TIMEOUT_S="1")
    try:
        reason = _refused(settings, "publish", "--model-dir", str(models.good), store="gs://bucket/models")
    finally:
        os.environ.pop("EDML_STORE_TIMEOUT_S")
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST")
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved
    assert "unreachable" in reason


def test_rollback_makes_the_older_version_desired_and_models_list_shows_it(
    settings: Settings, models: Models
) -> None:
    v1 = publish_model(settings, models.good, NAME)
    v2 = publish_model(settings, models.better, NAME)
    code, out, _ = edml(settings, "models", "list")
    assert code == 0
    desired_line = next(line for line in out.splitlines() if line.startswith("*"))
    assert v2.version in desired_line
    code, out, err = edml(settings, "rollback", NAME, "--to", v1.version)
    assert (code, out.strip()) == (0, v1.version), err
    assert desired_records(settings)[NAME] == v1  # the same record again
    assert topic_records(settings)[-1] == (NAME.encode(), v1)
    code, out, _ = edml(settings, "models", "list")
    rows = {line[2:].split()[1]: line for line in out.splitlines()[1:]}
    assert rows[v1.version].startswith("* ") and rows[v2.version].startswith("  ")
    assert rows[v1.version][2:].split()[:4] == [NAME, v1.version, "yes", "yes"]
    code, _, err = edml(settings, "rollback", NAME, "--to", "9.9.9-nope-1")
    assert code == 2 and "has no version 9.9.9-nope-1 on the model topic or in file://" in err, err
    assert desired_records(settings)[NAME] == v1


def test_rollback_from_the_store_when_the_topic_has_no_history(
    settings: Settings, models: Models, kafka_bootstrap: str
) -> None:
    v1 = publish_model(settings, models.good, NAME)
    # a new set of topics sharing the store: the record of v1 exists only as the store's manifest
    from edml.core.config import Topics
    from edml.kafka.topics import create_topics

    fresh = Settings(
        bootstrap_servers=kafka_bootstrap,
        topics=Topics().with_prefix(settings.topics.models.removesuffix("models") + "fresh-"),
        partitions=2,
        state_dir=settings.state_dir,
    )
    create_topics(fresh)
    code, out, err = edml(fresh, "rollback", NAME, "--to", v1.version)
    assert code == 0, err
    restored = desired_records(fresh)[NAME]
    assert (restored.version, restored.sha256, restored.artifact_uri) == (v1.version, v1.sha256, v1.artifact_uri)
    assert restored.signature == v1.signature and restored.metrics == v1.metrics


def test_retire_publishes_a_tombstone(settings: Settings, models: Models) -> None:
    publish_model(settings, models.good, NAME)
    retire_model(settings, NAME)
    assert topic_records(settings)[-1] == (NAME.encode(), None)
    assert NAME not in desired_records(settings)
    # the first publish after a tombstone is compared with nothing
    publish_model(settings, models.worse, NAME)
    assert desired_records(settings)[NAME].metrics["mae"] == 300.0


def test_signed_records_verify_and_tampering_is_detected(settings: Settings, models: Models, tmp_path: Path) -> None:
    private, public = generate_keys(tmp_path / "keys")
    code, out, err = edml(settings, "publish", "--model-dir", str(models.good), "--signing-key", str(private))
    assert code == 0, err
    record = desired_records(settings)[settings.model_name]
    verify_record(record, public.read_bytes())
    import dataclasses

    forged = dataclasses.replace(record, sha256="0" * 64)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_record(forged, public.read_bytes())
    other_private, other_public = generate_keys(tmp_path / "other")
    with pytest.raises(SignatureInvalid):
        verify_record(record, other_public.read_bytes())
    # CI hands the key over as PEM text in EDML_MODEL_SIGNING_KEY
    env = {**{k: v for k, v in cli_env(settings).items() if v}, "EDML_MODEL_SIGNING_KEY": private.read_text()}
    result = CliRunner().invoke(app, ["publish", "--model-dir", str(models.better)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    second = desired_records(settings)[settings.model_name]
    assert second.version == result.stdout.strip()
    verify_record(second, public.read_bytes())


def test_models_status_shows_the_latest_status_per_process(settings: Settings) -> None:
    producer = make_producer(settings)
    serde = model_status_serde()
    for status in [
        ModelStatus(NAME, "v1", "received", "host-a:1", 1000),
        ModelStatus(NAME, "v1", "active", "host-a:1", 2000),
        ModelStatus(NAME, "v2", "rejected", "host-b:2", 3000, reason="sha256 mismatch"),
    ]:
        producer.produce(settings.topics.model_status, key=NAME.encode(), value=serde.encode(status))
    assert producer.flush(10) == 0
    code, out, _ = edml(settings, "models", "status")
    assert code == 0
    lines = out.splitlines()[1:]
    assert len(lines) == 2
    assert lines[0].split()[:4] == ["host-a:1", NAME, "v1", "active"]
    assert lines[1].split()[:4] == ["host-b:2", NAME, "v2", "rejected"] and "sha256 mismatch" in lines[1]


def _cli_process_env(settings: Settings, store: str | None = None) -> dict[str, str]:
    env = {**os.environ, **cli_env(settings, store), "TF_CPP_MIN_LOG_LEVEL": "2"}
    for unset in ("EDML_CONFIG", "EDML_MODEL_SIGNING_KEY", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MODEL"):
        env.pop(unset, None)
    return env


def test_the_installed_cli_refuses_in_one_line(settings: Settings, models: Models) -> None:
    env = _cli_process_env(settings)
    exe = str(Path(sys.executable).with_name("edml"))
    done = subprocess.run([exe, "publish", "--model-dir", str(models.wrong_signature)], env=env,
                          capture_output=True, text=True, cwd=REPO, timeout=180)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("edml: publish refused: the pipeline cannot feed this model")
    done = subprocess.run([exe, "publish", "--model-dir", str(models.good), "--store", "s3://nope"], env=env,
                          capture_output=True, text=True, cwd=REPO, timeout=180)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "edml: error: unsupported artifact store 's3://nope': use file:///path or gs://bucket/prefix"
    )
    assert topic_records(settings) == []


@pytest.mark.slow
def test_the_pipeline_train_and_publish_targets_run_locally(settings: Settings, tmp_path: Path) -> None:
    """`make data train publish`, as the CI stages run them, in a scratch folder against the test broker."""
    work = tmp_path / "work"
    work.mkdir()
    venv = Path(sys.executable).parent.parent
    env = _cli_process_env(settings, store=f"file://{tmp_path}/store")
    # -o: the venv is installed; never re-install it from a test
    make = ["make", "--no-print-directory", "-f", str(REPO / "Makefile"), "-C", str(work),
            f"VENV={venv}", "-o", f"{venv}/.installed"]
    done = subprocess.run([*make, "data", "train", "publish", "TRIPS=3000", "SEED=3"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    version = done.stdout.strip().splitlines()[-1]
    parsed = parse_version(version)
    assert parsed is not None and parsed[2] == "nogit"  # the scratch folder is no git checkout
    record = desired_records(settings)[NAME]
    assert record.version == version
    verify_sha256(fetch_artifact(record.artifact_uri), record.sha256)
    trained = [p for p in (work / "models").iterdir() if p.is_dir()]
    assert len(trained) == 1 and (trained[0] / "saved_model" / "saved_model.pb").is_file()
    # a failing step fails the run: publishing a folder without a model exits non-zero
    (work / "models" / "zz-empty").mkdir()
    done = subprocess.run([*make, "publish", "MODEL=zz-empty"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "has no saved_model/ folder" in done.stderr
    assert desired_records(settings)[NAME].version == version
