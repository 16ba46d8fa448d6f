"""Model artifacts: a deterministic ``.tar.gz`` of a SavedModel plus its manifest.

Layout of an artifact::

    manifest.json            # Manifest: signature, metrics, golden rows, reference distributions
    saved_model/...          # the SavedModel folder as exported by the trainer

Packing the same model folder twice gives the same bytes (sorted entries, fixed mtime, uid,
gid and modes, gzip header mtime 0), so the sha256 names the content. Unpacking treats the
bytes as hostile: ``safe_unpack`` refuses anything but plain files and folders under
``saved_model/`` and ``manifest.json``, and bounds the decompressed size while it reads.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import math
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edml.schemas.records import ModelSignature, TensorSpec

from edml.core.errors import Refusal

# the metrics the publish gate compares, in order of preference -> whether higher is better
GATE_METRICS = {"log_loss": False, "mae": False, "rmse": False, "auc": True}

MANIFEST_NAME = "manifest.json"
SAVED_MODEL_DIR = "saved_model"
SIGNATURE_KEY = "serving_default"
FORMAT_VERSION = 1
MiB = 1024 * 1024
# tar headers and pax records are read into memory by tarfile; the decompressed stream may
# exceed the content read so far by this much plus 1.5 KiB per member (header and padding)
# before it counts as a bomb
_HEADER_SLACK = 1 * MiB
_PER_MEMBER_SLACK = 1536
_MAX_MANIFEST_BYTES = 64 * MiB
_FIXED_MTIME = 0


class ArtifactError(Refusal):
    """An artifact or model folder that cannot be used; ``reason`` is one short line."""


@dataclass
class Manifest:
    """What an artifact says about its model: enough to check and warm it up without the trainer."""

    model_name: str
    version: str
    signature: ModelSignature
    metrics: dict[str, float]
    golden_inputs: dict[str, list]
    golden_outputs: Any  # the first output's values (a list), or {output name: values}
    reference: dict[str, dict]
    created_at: int
    format_version: int = FORMAT_VERSION
    # lineage from the trainer's metrics.json; optional so older manifests still read
    data_window_start: int | None = None
    data_window_end: int | None = None
    trainer_params: dict[str, str] = field(default_factory=dict)
    git_sha: str = ""

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys), so equal manifests have equal bytes."""
        body = {
            "format_version": self.format_version,
            "model_name": self.model_name,
            "version": self.version,
            "signature": signature_to_dict(self.signature),
            "metrics": self.metrics,
            "golden_inputs": self.golden_inputs,
            "golden_outputs": self.golden_outputs,
            "reference": self.reference,
            "created_at": self.created_at,
            "data_window_start": self.data_window_start,
            "data_window_end": self.data_window_end,
            "trainer_params": self.trainer_params,
            "git_sha": self.git_sha,
        }
        return json.dumps(body, sort_keys=True, indent=1, allow_nan=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Read a manifest; raises :class:`ArtifactError` with the reason when it is malformed."""
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ArtifactError(f"manifest is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise ArtifactError("manifest is not a JSON object")
        try:
            fmt = int(body.get("format_version", FORMAT_VERSION))
            if fmt > FORMAT_VERSION:
                raise ArtifactError(f"manifest format_version {fmt} is newer than this edml reads ({FORMAT_VERSION})")
            golden_inputs = body.get("golden_inputs", {})
            if not isinstance(golden_inputs, dict) or not all(isinstance(v, list) for v in golden_inputs.values()):
                raise ArtifactError("manifest golden_inputs must map each input name to a list")
            return cls(
                model_name=_str(body["model_name"], "model_name"),
                version=_str(body["version"], "version"),
                signature=signature_from_dict(body["signature"]),
                metrics={str(k): float(v) for k, v in dict(body.get("metrics", {})).items()},
                golden_inputs={str(k): list(v) for k, v in golden_inputs.items()},
                golden_outputs=_golden_outputs(body.get("golden_outputs", [])),
                reference={str(k): dict(v) for k, v in dict(body.get("reference", {})).items()},
                created_at=int(body["created_at"]),
                format_version=fmt,
                data_window_start=_opt_int(body.get("data_window_start")),
                data_window_end=_opt_int(body.get("data_window_end")),
                trainer_params={str(k): str(v) for k, v in dict(body.get("trainer_params", {})).items()},
                git_sha=str(body.get("git_sha") or ""),
            )
        except KeyError as e:
            raise ArtifactError(f"manifest lacks field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"manifest has a malformed field: {e}") from None


@dataclass
class Artifact:
    """The packed bytes of one model version, their sha256 (hex) and the manifest inside."""

    data: bytes
    sha256: str
    manifest: Manifest


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ArtifactError(f"manifest field {name!r} must be a non-empty string")
    return value


def _golden_outputs(raw: Any) -> Any:
    if isinstance(raw, dict):  # several outputs: {name: values}, values as the model returns them
        return {str(k): list(v) for k, v in raw.items()}
    return [float(v) for v in raw]


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def signature_to_dict(signature: ModelSignature) -> dict[str, list[dict[str, Any]]]:
    """A signature as plain JSON data."""
    return {
        "inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in signature.inputs],
        "outputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in signature.outputs],
    }


def signature_from_dict(data: dict[str, Any]) -> ModelSignature:
    """Inverse of :func:`signature_to_dict`."""

    def specs(items: Any) -> list[TensorSpec]:
        return [TensorSpec(name=str(i["name"]), dtype=str(i["dtype"]), shape=[int(d) for d in i["shape"]])
                for i in items]

    return ModelSignature(inputs=specs(data["inputs"]), outputs=specs(data["outputs"]))


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def verify_sha256(data: bytes, expected: str) -> None:
    """Raise :class:`ArtifactError` unless ``data`` hashes to ``expected``."""
    actual = sha256_hex(data)
    if actual != expected.lower():
        raise ArtifactError(f"sha256 mismatch: expected {expected}, got {actual}")


# --- reading a model folder -------------------------------------------------------------------


def signature_of(concrete_function: Any) -> ModelSignature:
    """The ModelSignature of a loaded SavedModel signature function (inputs sorted by name)."""

    def spec(name: str, tensor_spec: Any) -> TensorSpec:
        if tensor_spec.shape.rank is None:  # unknown rank: no dimensions to report
            return TensorSpec(name=name, dtype=tensor_spec.dtype.name, shape=[])
        shape = [-1 if d is None else int(d) for d in tensor_spec.shape.as_list()]
        return TensorSpec(name=name, dtype=tensor_spec.dtype.name, shape=shape)

    args, kwargs = concrete_function.structured_input_signature
    inputs = [spec(name, s) for name, s in sorted(kwargs.items())]
    inputs += [spec(s.name or f"input_{i}", s) for i, s in enumerate(args)]
    outputs_struct = concrete_function.structured_outputs
    if isinstance(outputs_struct, dict):
        outputs = [spec(name, s) for name, s in sorted(outputs_struct.items())]
    else:
        outputs = [spec("output_0", outputs_struct)]
    return ModelSignature(inputs=inputs, outputs=outputs)


def load_saved_model(saved_model_dir: Path) -> Any:
    """Load a SavedModel and return its ``serving_default`` function; ArtifactError says why not."""
    import tensorflow as tf

    if not (saved_model_dir / "saved_model.pb").is_file():
        raise ArtifactError(f"{saved_model_dir} holds no saved_model.pb")
    try:
        model = tf.saved_model.load(str(saved_model_dir))
    except Exception as e:  # TF raises many types for a damaged model; all mean "cannot load"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ArtifactError(f"cannot load SavedModel {saved_model_dir}: {first}") from None
    signatures = getattr(model, "signatures", {})
    if SIGNATURE_KEY not in signatures:
        raise ArtifactError(f"SavedModel has no {SIGNATURE_KEY!r} signature (has {sorted(signatures)})")
    return signatures[SIGNATURE_KEY]


def read_signature(saved_model_dir: Path) -> ModelSignature:
    """The serving signature of the SavedModel at ``saved_model_dir``."""
    return signature_of(load_saved_model(saved_model_dir))


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"model folder lacks {path.name} ({what})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path.name} is not valid JSON: {e}") from None


def _finite_metrics(raw: dict[str, Any]) -> dict[str, float]:
    # metrics.json also carries the data window and trainer params; the manifest's metrics
    # are the numbers alone (they go into the record's map<double>)
    out = {}
    for key, value in raw.items():
        if key.startswith("data_window_") or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            raise ArtifactError(f"metrics.json: {key} is {value}, not a finite number")
        out[key] = float(value)
    return out


def _saved_model_dir(model_dir: Path) -> Path:
    if not model_dir.is_dir():
        raise ArtifactError(f"model folder {model_dir} does not exist")
    saved_model = model_dir / SAVED_MODEL_DIR
    if not saved_model.is_dir():
        raise ArtifactError(f"model folder {model_dir} has no {SAVED_MODEL_DIR}/ folder")
    return saved_model


def load_model_folder(model_dir: Path) -> Any:
    """The ``serving_default`` function of the SavedModel in the trainer's folder ``model_dir``."""
    return load_saved_model(_saved_model_dir(Path(model_dir)))


def read_model_folder(
    model_dir: Path,
    model_name: str,
    version: str,
    created_at: int | None = None,
    *,
    signature: ModelSignature | None = None,
    git_sha: str = "",
) -> Manifest:
    """The manifest for the trainer's output folder (``edml train --out``).

    Loads the SavedModel to read its signature unless ``signature`` is given.
    """
    model_dir = Path(model_dir)
    saved_model = _saved_model_dir(model_dir)
    metrics_raw = _read_json(model_dir / "metrics.json", "the trainer's metrics")
    if not isinstance(metrics_raw, dict):
        raise ArtifactError("metrics.json is not a JSON object")
    metrics = _finite_metrics(metrics_raw)
    if not metrics.keys() & set(GATE_METRICS):
        raise ArtifactError(f"metrics.json has none of the numeric metrics the gate compares: {list(GATE_METRICS)}")
    golden = _read_json(model_dir / "golden.json", "golden input rows and outputs")
    if not isinstance(golden, dict) or not isinstance(golden.get("inputs"), dict) or not isinstance(
        golden.get("outputs"), list | dict
    ):
        raise ArtifactError('golden.json must be {"inputs": {input: [values]}, "outputs": [values] or '
                            '{output: [values]}}')
    reference_path = model_dir / "reference.json"
    reference = _read_json(reference_path, "reference distributions") if reference_path.exists() else {}
    if not isinstance(reference, dict):
        raise ArtifactError("reference.json is not a JSON object")
    if signature is None:
        signature = read_signature(saved_model)
    if created_at is None:
        created_at = _newest_mtime_ms(saved_model)
    params = metrics_raw.get("trainer_params", {})
    try:
        return Manifest(
            model_name=model_name,
            version=version,
            signature=signature,
            metrics=metrics,
            golden_inputs={str(k): list(v) for k, v in golden["inputs"].items()},
            golden_outputs=_golden_outputs(golden["outputs"]),
            reference={str(k): dict(v) for k, v in reference.items()},
            created_at=created_at,
            data_window_start=_opt_int(metrics_raw.get("data_window_start")),
            data_window_end=_opt_int(metrics_raw.get("data_window_end")),
            trainer_params={str(k): str(v) for k, v in dict(params).items()} if isinstance(params, dict) else {},
            git_sha=git_sha,
        )
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"model folder {model_dir}: malformed golden/reference/metrics data: {e}") from None


def _newest_mtime_ms(folder: Path) -> int:
    # when the trainer wrote the model: deterministic for a given folder, unlike "now"
    newest = max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
    return int(newest * 1000)


# --- packing ----------------------------------------------------------------------------------


def _tar_info(name: str, *, is_dir: bool, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = _FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.type = tarfile.REGTYPE
        info.mode = 0o644
        info.size = size
    return info


def pack_folder(saved_model: Path, manifest: Manifest) -> bytes:
    """The deterministic tar.gz of ``saved_model`` (as ``saved_model/``) and ``manifest``."""
    entries: list[tuple[str, Path]] = []
    for path in sorted(saved_model.rglob("*"), key=lambda p: p.relative_to(saved_model).as_posix()):
        if path.is_symlink():
            raise ArtifactError(f"{path} is a symbolic link; artifacts hold plain files only")
        if not (path.is_dir() or path.is_file()):
            raise ArtifactError(f"{path} is not a plain file or folder")
        entries.append((f"{SAVED_MODEL_DIR}/{path.relative_to(saved_model).as_posix()}", path))
    buf = io.BytesIO()
    manifest_bytes = manifest.to_json()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_tar_info(MANIFEST_NAME, is_dir=False, size=len(manifest_bytes)), io.BytesIO(manifest_bytes))
            tar.addfile(_tar_info(SAVED_MODEL_DIR, is_dir=True))
            for name, path in entries:
                if path.is_dir():
                    tar.addfile(_tar_info(name, is_dir=True))
                else:
                    with path.open("rb") as f:
                        tar.addfile(_tar_info(name, is_dir=False, size=path.stat().st_size), f)
    return buf.getvalue()


def pack_artifact(model_dir: Path, model_name: str, version: str, *, created_at: int | None = None) -> Artifact:
    """Pack the trainer's folder ``model_dir`` into an artifact for ``model_name`` ``version``.

    Reads the signature from the SavedModel, the metrics, golden rows and reference
    distributions from the folder's JSON files. Raises :class:`ArtifactError` with the reason
    when the folder is incomplete or the SavedModel does not load.
    """
    manifest = read_model_folder(Path(model_dir), model_name, version, created_at)
    data = pack_folder(Path(model_dir) / SAVED_MODEL_DIR, manifest)
    return Artifact(data=data, sha256=sha256_hex(data), manifest=manifest)


# --- unpacking --------------------------------------------------------------------------------


class _BombError(Exception):
    pass


class _BoundedReader(io.RawIOBase):
    """Reads the decompressed stream and stops once more than ``limit`` bytes came out."""

    def __init__(self, raw: io.BufferedIOBase, limit: int) -> None:
        self._raw = raw
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        chunk = self._raw.read(len(b))
        self.count += len(chunk)
        if self.count > self.limit:
            raise _BombError
        b[: len(chunk)] = chunk
        return len(chunk)


def _member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if name.startswith("/") or path.is_absolute():
        raise ArtifactError(f"artifact member {name!r} has an absolute path")
    if ".." in path.parts:
        raise ArtifactError(f"artifact member {name!r} has a '..' component")
    if "\\" in name or "\x00" in name:
        raise ArtifactError(f"artifact member {name!r} has a forbidden character")
    parts = [p for p in path.parts if p != "."]
    if not parts:
        raise ArtifactError(f"artifact member {name!r} has an empty path")
    clean = PurePosixPath(*parts)
    if clean.as_posix() != MANIFEST_NAME and parts[0] != SAVED_MODEL_DIR:
        raise ArtifactError(f"artifact member {name!r} is outside {SAVED_MODEL_DIR}/ and {MANIFEST_NAME}")
    return clean


def _check_member_type(member: tarfile.TarInfo) -> None:
    if member.issym():
        raise ArtifactError(f"artifact member {member.name!r} is a symbolic link")
    if member.islnk():
        raise ArtifactError(f"artifact member {member.name!r} is a hard link")
    if member.ischr() or member.isblk() or member.isfifo():
        raise ArtifactError(f"artifact member {member.name!r} is a device or fifo")
    if member.issparse():
        raise ArtifactError(f"artifact member {member.name!r} is a sparse file")
    if not (member.isreg() or member.isdir()):
        raise ArtifactError(f"artifact member {member.name!r} has unsupported type {member.type!r}")


def _clear(dest: Path, created: bool) -> None:
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def safe_unpack(
    data: bytes, dest: Path, max_total_bytes: int = 512 * MiB, max_members: int = 10_000
) -> Manifest:
    """Unpack an artifact into ``dest`` (new or empty) and return its manifest.

    Refuses with :class:`ArtifactError` absolute paths, ``..``, links, devices and fifos,
    members outside ``saved_model/`` and ``manifest.json``, duplicates, more than
    ``max_members`` members, more than ``max_total_bytes`` of content (counted while reading,
    whatever the headers claim), corrupt gzip or tar, and a missing manifest or SavedModel.
    On refusal ``dest`` is left empty (or removed when this call created it).
    """
    dest = Path(dest)
    created = not dest.exists()
    if not created and (not dest.is_dir() or any(dest.iterdir())):
        raise ArtifactError(f"unpack destination {dest} is not an empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return _unpack(data, dest, max_total_bytes, max_members)
    except BaseException:
        _clear(dest, created)
        raise


def _unpack(data: bytes, dest: Path, max_total_bytes: int, max_members: int) -> Manifest:
    if data[:2] != b"\x1f\x8b":
        raise ArtifactError("artifact is not gzip data")
    gz = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
    bounded = _BoundedReader(gz, max_total_bytes + _HEADER_SLACK + _PER_MEMBER_SLACK)
    stream = io.BufferedReader(bounded, buffer_size=64 * 1024)
    manifest_bytes: bytes | None = None
    seen: set[str] = set()
    total = 0
    members = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                members += 1
                # metadata allowance grows with the members actually seen, not with max_members
                bounded.limit = max_total_bytes + _HEADER_SLACK + (members + 1) * _PER_MEMBER_SLACK
                if members > max_members:
                    raise ArtifactError(f"artifact has more than {max_members} members")
                _check_member_type(member)
                rel = _member_path(member.name)
                key = rel.as_posix()
                if key in seen:
                    raise ArtifactError(f"artifact member {key!r} appears twice")
                seen.add(key)
                target = dest.joinpath(*rel.parts)
                if member.isdir():
                    if key == MANIFEST_NAME:
                        raise ArtifactError(f"artifact member {MANIFEST_NAME} is a folder")
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                if key == SAVED_MODEL_DIR:
                    raise ArtifactError(f"artifact member {SAVED_MODEL_DIR} is a file, not a folder")
                # a tar member's content is exactly its declared size: refuse before writing a byte
                if total + member.size > max_total_bytes:
                    raise ArtifactError(f"artifact unpacks to more than {max_total_bytes} bytes "
                                        f"(member {key!r} declares {member.size})")
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - regular members always have a file object
                    raise ArtifactError(f"artifact member {key!r} has no content")
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                collected = bytearray() if key == MANIFEST_NAME else None
                # "x": never follow or overwrite anything already at the target
                with open(target, "xb") as out:
                    while True:
                        chunk = source.read(1024 * 1024)
                        if not chunk:
                            break
                        total += len(chunk)
                        if total > max_total_bytes:
                            raise ArtifactError(f"artifact unpacks to more than {max_total_bytes} bytes")
                        out.write(chunk)
                        if collected is not None:
                            collected += chunk
                            if len(collected) > _MAX_MANIFEST_BYTES:
                                raise ArtifactError(f"{MANIFEST_NAME} is larger than {_MAX_MANIFEST_BYTES} bytes")
                os.chmod(target, 0o644)
                if collected is not None:
                    manifest_bytes = bytes(collected)
    except _BombError:
        raise ArtifactError(f"artifact unpacks to more than {max_total_bytes} bytes") from None
    except ArtifactError:
        raise
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise ArtifactError(f"corrupt artifact: {type(e).__name__}: {e}") from None
    except OSError as e:
        raise ArtifactError(f"cannot unpack artifact: {e.strerror or e}") from None
    if manifest_bytes is None:
        raise ArtifactError(f"artifact has no {MANIFEST_NAME}")
    if not (dest / SAVED_MODEL_DIR / "saved_model.pb").is_file():
        raise ArtifactError(f"artifact has no {SAVED_MODEL_DIR}/saved_model.pb")
    return Manifest.from_json(manifest_bytes)


def read_manifest(data: bytes, max_manifest_bytes: int = _MAX_MANIFEST_BYTES) -> Manifest:
    """The manifest of an artifact without unpacking it (it is the first member)."""
    try:
        with contextlib.closing(gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")) as gz:
            bounded = _BoundedReader(gz, max_manifest_bytes + _HEADER_SLACK)
            with tarfile.open(fileobj=io.BufferedReader(bounded), mode="r|") as tar:
                for member in tar:
                    if member.name == MANIFEST_NAME and member.isreg():
                        source = tar.extractfile(member)
                        if source is not None:
                            return Manifest.from_json(source.read(max_manifest_bytes + 1))
                    break
    except _BombError:
        raise ArtifactError(f"{MANIFEST_NAME} is larger than {max_manifest_bytes} bytes") from None
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, OSError) as e:
        raise ArtifactError(f"corrupt artifact: {type(e).__name__}: {e}") from None
    raise ArtifactError(f"artifact does not start with {MANIFEST_NAME}")
