"""Artifact stores: where model artifacts live, one immutable object per (model name, version).

Layout in every store: ``<root>/<model name>/<version>.tar.gz``.

* ``file:///abs/folder`` or ``file://relative/folder``: a local folder (the default).
* ``gs://bucket/prefix``: Google Cloud Storage through ``google-cloud-storage``. The client
  honours ``STORAGE_EMULATOR_HOST`` (tests use a local emulator) and takes credentials from the
  environment only (``GOOGLE_APPLICATION_CREDENTIALS`` or workload identity).

Versions are immutable: ``put`` of an existing version raises :class:`VersionExists` (an
atomic no-overwrite link for files, ``if_generation_match=0`` for GCS), so two racing
publishers cannot both win.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edml.core.errors import OperatorError, Refusal

ARTIFACT_SUFFIX = ".tar.gz"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
# how long the GCS client may retry a request that fails with a connection error
STORE_TIMEOUT_ENV = "EDML_STORE_TIMEOUT_S"
DEFAULT_STORE_TIMEOUT_S = 60.0


class StoreError(Refusal):
    """An artifact store operation that failed; ``reason`` is one short line."""


class VersionExists(StoreError):
    """The store already holds this model version; versions are never overwritten."""


class StoreUnavailable(StoreError):
    """The store could not be reached (connection, timeout, 5xx); worth retrying later."""


class ArtifactMissing(StoreError):
    """The store answered, and the artifact is not there."""


class StoreConfigError(StoreError, OperatorError):
    """A store URI or store setup the operator must fix (bad URI, no credentials)."""


def check_name(value: str, what: str) -> str:
    """``value`` if it is a safe path component for a model name or version, else StoreConfigError."""
    if not _NAME.match(value) or ".." in value:
        raise StoreConfigError(
            f"{what} {value!r} must be 1-200 characters of letters, digits, '.', '_', '+', '-' "
            "(starting with a letter or digit)"
        )
    return value


def _natural_key(version: str) -> list[Any]:
    # "...-10" sorts after "...-9"
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", version)]


def sort_versions(versions: list[str]) -> list[str]:
    """Versions in natural order (numbers compared as numbers)."""
    return sorted(versions, key=_natural_key)


class ArtifactStore(ABC):
    """Immutable artifacts by model name and version."""

    uri: str

    @abstractmethod
    def put(self, model_name: str, version: str, data: bytes) -> str:
        """Store ``data`` as ``model_name`` ``version``; returns its URI. VersionExists if present."""

    @abstractmethod
    def get(self, uri: str) -> bytes:
        """The bytes at ``uri``; ArtifactMissing when absent, StoreUnavailable when unreachable."""

    @abstractmethod
    def versions(self, model_name: str) -> list[str]:
        """Every stored version of ``model_name``, in natural order."""

    @abstractmethod
    def model_names(self) -> list[str]:
        """Every model name the store holds artifacts for, sorted."""

    @abstractmethod
    def artifact_uri(self, model_name: str, version: str) -> str:
        """Where ``put`` stores ``model_name`` ``version``."""

    def exists(self, model_name: str, version: str) -> bool:
        """Whether the store holds ``model_name`` ``version``."""
        return version in self.versions(model_name)


class FileStore(ArtifactStore):
    """A local folder: ``file:///abs/path`` (or ``file://relative/path``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.uri = f"file://{self.root}"

    @staticmethod
    def path_of(uri: str) -> Path:
        """The local path of a ``file://`` URI."""
        if not uri.startswith("file://"):
            raise StoreConfigError(f"{uri!r} is not a file:// URI")
        return Path(uri.removeprefix("file://"))

    def artifact_uri(self, model_name: str, version: str) -> str:
        """``file://<root>/<name>/<version>.tar.gz``."""
        check_name(model_name, "model name")
        check_name(version, "version")
        return f"file://{self.root / model_name / (version + ARTIFACT_SUFFIX)}"

    def put(self, model_name: str, version: str, data: bytes) -> str:
        """Write to a temp file, then hard-link it into place: the link fails if the version exists."""
        uri = self.artifact_uri(model_name, version)
        target = self.path_of(uri)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"cannot create store folder {target.parent}: {e.strerror or e}") from None
        if target.exists():
            raise VersionExists(f"{model_name} {version} already exists at {uri}")
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o444)
                os.link(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except FileExistsError:
            raise VersionExists(f"{model_name} {version} already exists at {uri}") from None
        except OSError as e:
            raise StoreUnavailable(f"cannot write {target}: {e.strerror or e}") from None
        return uri

    def get(self, uri: str) -> bytes:
        """Read the regular file at a ``file://`` URI.

        Only a regular file is read: a fifo would block the reader for good, a device never
        ends, a folder or a symbolic link (which may point anywhere) is not an artifact. The
        file is opened without blocking and without following a final link, then checked.
        """
        path = self.path_of(uri)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            raise ArtifactMissing(f"no artifact at {uri}") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ArtifactMissing(f"{uri} is a symbolic link, not an artifact") from None
            raise StoreUnavailable(f"cannot read {uri}: {e.strerror or e}") from None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
                raise ArtifactMissing(f"{uri} is {kind}, not an artifact")
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read()
        except OSError as e:
            raise StoreUnavailable(f"cannot read {uri}: {e.strerror or e}") from None
        finally:
            os.close(fd)

    def versions(self, model_name: str) -> list[str]:
        """Versions from the file names under ``<root>/<name>/``."""
        folder = self.root / check_name(model_name, "model name")
        try:
            names = [p.name for p in folder.iterdir() if p.name.endswith(ARTIFACT_SUFFIX) and p.is_file()]
        except FileNotFoundError:
            return []
        except OSError as e:
            raise StoreUnavailable(f"cannot list {folder}: {e.strerror or e}") from None
        return sort_versions([n.removesuffix(ARTIFACT_SUFFIX) for n in names])

    def model_names(self) -> list[str]:
        """The folders under the root."""
        try:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise StoreUnavailable(f"cannot list {self.root}: {e.strerror or e}") from None


class GCSStore(ArtifactStore):
    """``gs://bucket/prefix`` through google-cloud-storage (``STORAGE_EMULATOR_HOST`` honoured)."""

    def __init__(self, bucket: str, prefix: str = "", *, timeout_s: float | None = None) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"gs://{bucket}/{self.prefix}".rstrip("/")
        self.timeout_s = timeout_s if timeout_s is not None else float(
            os.environ.get(STORE_TIMEOUT_ENV, DEFAULT_STORE_TIMEOUT_S)
        )
        self._client: Any = None

    @staticmethod
    def split(uri: str) -> tuple[str, str]:
        """``gs://bucket/some/path`` -> ``("bucket", "some/path")``."""
        parsed = urlparse(uri)
        if parsed.scheme != "gs" or not parsed.netloc:
            raise StoreConfigError(f"{uri!r} is not a gs://bucket/path URI")
        return parsed.netloc, parsed.path.lstrip("/")

    def _key(self, model_name: str, version: str) -> str:
        check_name(model_name, "model name")
        check_name(version, "version")
        return "/".join(p for p in (self.prefix, model_name, version + ARTIFACT_SUFFIX) if p)

    def artifact_uri(self, model_name: str, version: str) -> str:
        """``gs://bucket/prefix/<name>/<version>.tar.gz``."""
        return f"gs://{self.bucket_name}/{self._key(model_name, version)}"

    def client(self) -> Any:
        """The storage client, created on first use (credentials from the environment)."""
        if self._client is None:
            from google.auth.exceptions import DefaultCredentialsError
            from google.cloud import storage

            try:
                self._client = storage.Client()
            except DefaultCredentialsError as e:
                raise StoreConfigError(
                    f"no Google credentials for {self.uri}: set GOOGLE_APPLICATION_CREDENTIALS or use "
                    f"workload identity ({str(e).splitlines()[0]})"
                ) from None
        return self._client

    def _retry(self) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self.timeout_s)

    def _request_timeout(self) -> tuple[float, float]:
        # (connect, read): a dead endpoint fails fast, a slow upload may take its time
        return (min(10.0, self.timeout_s), max(60.0, self.timeout_s))

    def _translate(self, e: Exception, what: str) -> StoreError:
        from google.api_core import exceptions as gexc
        from google.auth.exceptions import TransportError

        if isinstance(e, gexc.NotFound):
            return ArtifactMissing(f"{what}: not found")
        if isinstance(e, gexc.PreconditionFailed):
            return VersionExists(f"{what}: already exists")
        if isinstance(e, gexc.Forbidden | gexc.Unauthorized):
            return StoreUnavailable(f"{what}: access denied ({e.message})")
        if isinstance(e, gexc.GoogleAPICallError):
            return StoreUnavailable(f"{what}: {type(e).__name__} {e.message}")
        if isinstance(e, gexc.RetryError | TransportError | OSError | TimeoutError):
            cause = getattr(e, "cause", None) or e
            first = (str(cause).splitlines() or [type(cause).__name__])[0][:200]
            return StoreUnavailable(f"{what}: store unreachable ({type(cause).__name__}: {first})")
        return StoreUnavailable(f"{what}: {type(e).__name__}: {e}")

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as e:  # the client raises api_core, auth, requests and OS errors: all become store errors
            raise self._translate(e, what) from None

    def put(self, model_name: str, version: str, data: bytes) -> str:
        """Upload with ``if_generation_match=0``: GCS refuses it when the object exists."""
        uri = self.artifact_uri(model_name, version)
        blob = self.client().bucket(self.bucket_name).blob(self._key(model_name, version))
        # The precondition below is what makes a race safe on GCS; the explicit check first gives
        # the same answer on servers that ignore preconditions (gcp-storage-emulator does).
        exists = self._call(f"check {uri}", blob.exists, retry=self._retry(), timeout=self._request_timeout())
        if exists:
            raise VersionExists(f"{model_name} {version} already exists at {uri}")
        try:
            self._call(
                f"upload {uri}",
                blob.upload_from_string,
                data,
                content_type="application/gzip",
                if_generation_match=0,
                retry=self._retry(),
                timeout=self._request_timeout(),
            )
        except VersionExists:
            raise VersionExists(f"{model_name} {version} already exists at {uri}") from None
        except ArtifactMissing:
            raise StoreUnavailable(f"upload {uri}: bucket {self.bucket_name} does not exist") from None
        return uri

    def get(self, uri: str) -> bytes:
        """Download the object at a ``gs://`` URI (any bucket this client may read)."""
        bucket, key = self.split(uri)
        blob = self.client().bucket(bucket).blob(key)
        try:
            return self._call(
                f"download {uri}", blob.download_as_bytes, retry=self._retry(), timeout=self._request_timeout()
            )
        except ArtifactMissing:
            raise ArtifactMissing(f"no artifact at {uri}") from None

    def versions(self, model_name: str) -> list[str]:
        """Versions from the object names under ``prefix/<name>/``."""
        folder = "/".join(p for p in (self.prefix, check_name(model_name, "model name")) if p) + "/"

        def names() -> list[str]:
            blobs = self.client().list_blobs(
                self.bucket_name, prefix=folder, retry=self._retry(), timeout=self._request_timeout()
            )
            return [b.name for b in blobs]

        try:
            found = self._call(f"list {self.uri}/{model_name}", names)
        except ArtifactMissing:
            return []
        versions = [n[len(folder):].removesuffix(ARTIFACT_SUFFIX) for n in found if n.endswith(ARTIFACT_SUFFIX)]
        return sort_versions([v for v in versions if "/" not in v])

    def model_names(self) -> list[str]:
        """The "folders" directly under the prefix."""
        root = f"{self.prefix}/" if self.prefix else ""

        def prefixes() -> list[str]:
            pages = self.client().list_blobs(
                self.bucket_name, prefix=root, delimiter="/", retry=self._retry(), timeout=self._request_timeout()
            )
            for _ in pages:  # the prefixes are known once the listing was read
                pass
            return sorted(pages.prefixes)

        try:
            found = self._call(f"list {self.uri}", prefixes)
        except ArtifactMissing:
            return []
        return [p[len(root):].rstrip("/") for p in found if _NAME.match(p[len(root):].rstrip("/"))]


def open_store(uri: str) -> ArtifactStore:
    """The store for ``uri``: ``file://...`` or ``gs://bucket[/prefix]``; StoreConfigError otherwise.

    An artifact URI also works (``open_store(record.artifact_uri).get(record.artifact_uri)``).
    """
    if uri.startswith("file://"):
        path = uri.removeprefix("file://")
        if not path:
            raise StoreConfigError("file:// store URI needs a folder, e.g. file:///var/edml/artifacts")
        return FileStore(Path(path))
    if uri.startswith("gs://"):
        bucket, prefix = GCSStore.split(uri)
        return GCSStore(bucket, prefix)
    raise StoreConfigError(f"unsupported artifact store {uri!r}: use file:///path or gs://bucket/prefix")


def fetch_artifact(uri: str) -> bytes:
    """The bytes of the artifact at ``uri``, from whichever store the URI names."""
    return open_store(uri).get(uri)
