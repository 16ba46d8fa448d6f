"""Artifacts: deterministic packing, the manifest, sha256, and unpacking hostile archives."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from edml.model_topic.artifact import (
    ArtifactError,
    Manifest,
    pack_artifact,
    read_manifest,
    safe_unpack,
    verify_sha256,
)
from edml.model_topic.stores import FileStore, StoreConfigError, VersionExists, open_store

from tests.helpers.savedmodels import GOLDEN_INPUTS, write_model_dir

NAME = "trip-duration"
VERSION = "0.1.0-20240101000000-abc1234-1"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model") / "m", mae=150.0)


@pytest.fixture(scope="module")
def artifact(model_dir: Path):  # noqa: ANN201
    return pack_artifact(model_dir, NAME, VERSION)


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w", format=fmt) as tar:
        for info, content in members:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buf.getvalue()


def _file(name: str, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, content


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def _good_members(artifact) -> list[tuple[tarfile.TarInfo, bytes | None]]:  # noqa: ANN001
    out = []
    with tarfile.open(fileobj=io.BytesIO(artifact.data), mode="r:gz") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isreg() else None
            out.append((m, f.read() if f else None))
    return out


def test_packing_is_deterministic_and_carries_the_manifest(model_dir: Path, artifact) -> None:  # noqa: ANN001
    again = pack_artifact(model_dir, NAME, VERSION)
    assert again.data == artifact.data
    assert again.sha256 == artifact.sha256
    with tarfile.open(fileobj=io.BytesIO(artifact.data), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == "manifest.json"
    assert "saved_model/saved_model.pb" in names
    assert names[1:] == sorted(names[1:])
    assert {(m.mtime, m.uid, m.gid) for m in members} == {(0, 0, 0)}
    assert artifact.data[4:8] == b"\x00\x00\x00\x00"  # gzip header mtime
    m = artifact.manifest
    assert (m.model_name, m.version, m.format_version) == (NAME, VERSION, 1)
    assert m.metrics["mae"] == 150.0 and "trainer_params" not in m.metrics
    assert m.golden_inputs == GOLDEN_INPUTS and len(m.golden_outputs) == 3
    assert "trip_distance_km" in m.reference
    assert m.trainer_params == {"epochs": "1", "batch_size": "256"}
    assert m.data_window_end == 1_700_000_000_000


def test_signature_is_read_from_the_saved_model(artifact) -> None:  # noqa: ANN001
    sig = artifact.manifest.signature
    inputs = {s.name: (s.dtype, s.shape) for s in sig.inputs}
    assert inputs == {
        "pickup_time": ("int64", [-1]),
        "pickup_zone": ("int64", [-1]),
        "dropoff_zone": ("int64", [-1]),
        "pickup_borough": ("string", [-1]),
        "passenger_count": ("int64", [-1]),
        "trip_distance_km": ("float32", [-1]),
    }
    assert [(s.name, s.dtype, s.shape) for s in sig.outputs] == [("duration_s", "float32", [-1])]


def test_manifest_round_trips_through_json(artifact) -> None:  # noqa: ANN001
    assert Manifest.from_json(artifact.manifest.to_json()) == artifact.manifest
    assert read_manifest(artifact.data) == artifact.manifest
    with pytest.raises(ArtifactError, match="lacks field 'version'"):
        body = json.loads(artifact.manifest.to_json())
        del body["version"]
        Manifest.from_json(json.dumps(body).encode())
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Manifest.from_json(b"{nope")


def test_safe_unpack_restores_the_saved_model(artifact, tmp_path: Path) -> None:  # noqa: ANN001
    manifest = safe_unpack(artifact.data, tmp_path / "out")
    assert manifest == artifact.manifest
    assert (tmp_path / "out/saved_model/saved_model.pb").is_file()
    assert (tmp_path / "out/manifest.json").is_file()


def test_sha256_mismatch_names_both_hashes(artifact) -> None:  # noqa: ANN001
    verify_sha256(artifact.data, artifact.sha256)
    with pytest.raises(ArtifactError, match=f"sha256 mismatch: expected {'0' * 64}, got {artifact.sha256}"):
        verify_sha256(artifact.data, "0" * 64)


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_file("/etc/evil", b"x"), "absolute path"),
        (_file("saved_model/../../evil", b"x"), "'..'"),
        (_file("other/file", b"x"), "outside saved_model/"),
        (_special("saved_model/link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
        (_special("saved_model/hard", tarfile.LNKTYPE, "manifest.json"), "hard link"),
        (_special("saved_model/dev", tarfile.CHRTYPE), "device or fifo"),
        (_special("saved_model/fifo", tarfile.FIFOTYPE), "device or fifo"),
        (_file("manifest.json", b"{}"), "appears twice"),
    ],
)
def test_safe_unpack_refuses_hostile_members(artifact, tmp_path: Path, member, reason: str) -> None:  # noqa: ANN001
    data = _tar_gz([*_good_members(artifact), member])
    with pytest.raises(ArtifactError, match=reason):
        safe_unpack(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-unpacked stays behind
    assert not Path("/etc/evil").exists()


def test_safe_unpack_counts_real_bytes_against_the_bound(artifact, tmp_path: Path) -> None:  # noqa: ANN001
    bomb = _tar_gz([*_good_members(artifact), _file("saved_model/zeros", b"\0" * (4 * 1024 * 1024))])
    assert len(bomb) < 64 * 1024  # compresses ~1000:1
    with pytest.raises(ArtifactError, match="more than 1048576 bytes"):
        safe_unpack(bomb, tmp_path / "out", max_total_bytes=1024 * 1024)
    # tar metadata (a pax header) is decompressed too, and bounded as well
    info, content = _file("saved_model/pax", b"x")
    info.pax_headers = {"comment": "y" * (8 * 1024 * 1024)}
    pax_bomb = _tar_gz([*_good_members(artifact), (info, content)], fmt=tarfile.PAX_FORMAT)
    with pytest.raises(ArtifactError, match="more than 1048576 bytes"):
        safe_unpack(pax_bomb, tmp_path / "out2", max_total_bytes=1024 * 1024)
    # a header that claims more bytes than the archive holds is a corrupt archive
    info, _ = _file("saved_model/short", b"")
    info.size = 10_000
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for m, c in _good_members(artifact):
            tar.addfile(m, io.BytesIO(c) if c is not None else None)
        tar.addfile(info, io.BytesIO(b"\1" * 10_000))
    truncated = raw.getvalue()[: -(10_000 + 1024)]
    with pytest.raises(ArtifactError, match="corrupt artifact"):
        safe_unpack(gzip.compress(truncated), tmp_path / "out3")


def test_safe_unpack_refuses_too_many_members_corrupt_data_and_no_manifest(artifact, tmp_path: Path) -> None:  # noqa: ANN001
    many = _tar_gz([*_good_members(artifact), *[_file(f"saved_model/f{i}", b"x") for i in range(30)]])
    with pytest.raises(ArtifactError, match="more than 20 members"):
        safe_unpack(many, tmp_path / "a", max_members=20)
    with pytest.raises(ArtifactError, match="not gzip"):
        safe_unpack(b"plain bytes", tmp_path / "b")
    with pytest.raises(ArtifactError, match="corrupt artifact"):
        safe_unpack(artifact.data[: len(artifact.data) // 2], tmp_path / "c")
    without = _tar_gz([m for m in _good_members(artifact) if m[0].name != "manifest.json"])
    with pytest.raises(ArtifactError, match="no manifest.json"):
        safe_unpack(without, tmp_path / "d")
    (tmp_path / "e").mkdir()
    (tmp_path / "e/leftover").write_text("x")
    with pytest.raises(ArtifactError, match="not an empty folder"):
        safe_unpack(artifact.data, tmp_path / "e")


def test_broken_model_folders_are_refused_with_a_reason(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        pack_artifact(tmp_path / "missing", NAME, VERSION)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="no saved_model/ folder"):
        pack_artifact(tmp_path / "empty", NAME, VERSION)
    broken = tmp_path / "broken"
    (broken / "saved_model").mkdir(parents=True)
    (broken / "saved_model/saved_model.pb").write_bytes(b"not a protobuf")
    for name in ("metrics.json", "golden.json"):
        (broken / name).write_bytes((model_dir / name).read_bytes())
    with pytest.raises(ArtifactError, match="cannot load SavedModel"):
        pack_artifact(broken, NAME, VERSION)


def test_file_store_is_immutable(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/store")
    assert isinstance(store, FileStore)
    uri = store.put(NAME, "1.0-1", b"one")
    assert store.get(uri) == b"one"
    with pytest.raises(VersionExists):
        store.put(NAME, "1.0-1", b"two")
    assert store.get(uri) == b"one"
    store.put(NAME, "1.0-10", b"ten")
    store.put(NAME, "1.0-2", b"two")
    assert store.versions(NAME) == ["1.0-1", "1.0-2", "1.0-10"]
    assert store.versions("other") == []
    with pytest.raises(StoreConfigError):
        store.put("../escape", "1", b"x")
    with pytest.raises(StoreConfigError):
        open_store("s3://bucket")
