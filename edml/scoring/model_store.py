"""The model store: archives, manifests and records of model versions in RocksDB (rocksdict).

It is the scorer's local copy of the model topic's artifacts, like a Kafka Streams state
store: a restart loads the active model from here without reaching the artifact store.

Keys (values are raw bytes)::

    archive/<name>/<version>   the artifact .tar.gz as fetched and verified
    manifest/<name>/<version>  manifest.json
    record/<name>/<version>    the ModelRecord (Avro single-object encoding)
    loaded/<name>/<version>    the ModelRecord the kept archive loaded with
    active/<name>              the version that served last
    order/<name>               JSON list of kept versions, oldest first
    served/<name>              JSON list of versions that served well, oldest first (last known good)
    faulty/<name>/<version>    why scoring quarantined that version (it never serves again here)
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from rocksdict import Options, Rdict

from edml.schemas.records import ModelRecord
from edml.schemas.serde import model_record_serde


class ModelStore:
    """Keeps the last ``keep`` versions per model name (plus the active one and its challengers)."""

    def __init__(self, path: Path, keep: int = 3) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self._db = Rdict(str(path), options=options)
        self._keep = max(1, keep)
        self._lock = threading.Lock()
        self._serde = model_record_serde()

    def close(self) -> None:
        """Flush and close the database."""
        self._db.close()

    def _get(self, key: str) -> bytes | None:
        return self._db.get(key.encode())

    def _put(self, key: str, value: bytes) -> None:
        self._db[key.encode()] = value

    def put(self, record: ModelRecord, archive: bytes, manifest_json: bytes) -> None:
        """Keep a verified version, then drop the oldest ones beyond ``keep``."""
        name, version = record.model_name, record.version
        with self._lock:
            self._put(f"archive/{name}/{version}", archive)
            self._put(f"manifest/{name}/{version}", manifest_json)
            self.put_record(record)
            # the record that loaded: a later record naming the same version cannot replace it
            self._put(f"loaded/{name}/{version}", self._serde.encode(record))
            order = [v for v in self.versions(name) if v != version] + [version]
            self._put(f"order/{name}", json.dumps(order).encode())
            self._prune(name, order)

    def put_record(self, record: ModelRecord) -> None:
        """Remember a record seen on the model topic (challengers are resolved from these)."""
        self._put(f"record/{record.model_name}/{record.version}", self._serde.encode(record))

    def _prune(self, name: str, order: list[str]) -> None:
        protected = set()
        active = self.active(name)
        if active:
            protected.add(active)
            record = self.record(name, active)
            if record:
                protected.update(record.challengers)
        served = self.served(name)
        if served:
            protected.add(served[-1])  # the last known good: what a rejected desired record falls back on
        keep = order[-self._keep:]
        for version in order[:-self._keep]:
            if version in protected:
                keep.insert(0, version)
                continue
            for kind in ("archive", "manifest", "loaded"):
                self._db.delete(f"{kind}/{name}/{version}".encode())
        self._put(f"order/{name}", json.dumps([v for v in order if v in keep]).encode())

    def archive(self, name: str, version: str) -> bytes | None:
        """The archive of a kept version."""
        return self._get(f"archive/{name}/{version}")

    def manifest_json(self, name: str, version: str) -> bytes | None:
        """The manifest of a kept version."""
        return self._get(f"manifest/{name}/{version}")

    def record(self, name: str, version: str) -> ModelRecord | None:
        """A record seen for that version, if any."""
        raw = self._get(f"record/{name}/{version}")
        return None if raw is None else self._serde.decode(raw)

    def versions(self, name: str) -> list[str]:
        """Versions with an archive kept, oldest first."""
        raw = self._get(f"order/{name}")
        return [] if raw is None else json.loads(raw)

    def set_active(self, name: str, version: str | None) -> None:
        """Record which version serves (None: none does)."""
        with self._lock:
            if version is None:
                self._db.delete(f"active/{name}".encode())
            else:
                self._put(f"active/{name}", version.encode())
            self._prune(name, self.versions(name))

    def active(self, name: str) -> str | None:
        """The version that served last."""
        raw = self._get(f"active/{name}")
        return None if raw is None else raw.decode()

    def served(self, name: str) -> list[str]:
        """Versions that served well, oldest first."""
        raw = self._get(f"served/{name}")
        return [] if raw is None else json.loads(raw)

    def mark_served(self, name: str, version: str) -> None:
        """``version`` serves (again): it becomes the newest last-known-good version."""
        with self._lock:
            order = [v for v in self.served(name) if v != version] + [version]
            self._put(f"served/{name}", json.dumps(order).encode())

    def mark_faulty(self, name: str, version: str, reason: str) -> None:
        """Scoring quarantined ``version``: it is no longer good, whatever it did before."""
        with self._lock:
            self._put(f"faulty/{name}/{version}", reason.encode())
            self._put(f"served/{name}", json.dumps([v for v in self.served(name) if v != version]).encode())

    def faulty(self, name: str, version: str) -> str | None:
        """Why ``version`` was quarantined, or None."""
        raw = self._get(f"faulty/{name}/{version}")
        return None if raw is None else raw.decode(errors="replace")

    def last_good(self, name: str, excluding: set[str]) -> ModelRecord | None:
        """The newest version that served well and can load from here (archive and record kept)."""
        for version in reversed(self.served(name)):
            if version in excluding or self.faulty(name, version) is not None:
                continue
            raw = self._get(f"loaded/{name}/{version}")
            if raw is not None and self.archive(name, version) is not None:
                return self._serde.decode(raw)
        return None
