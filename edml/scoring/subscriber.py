"""The model topic broadcast: every scoring process reads ALL of the compacted model topic.

Bytewax has no global state, so the model topic is read like a Kafka Streams GlobalKTable:
one background consumer per process, assigned every partition from the beginning, with no
consumer group. We chose this over a Bytewax ``DynamicSource`` (built once per worker) because
a per-worker source would deliver each record W times per process and load the model W
times, and loading inside a worker would stall that worker's scoring. Here a model loads once
per process, off the scoring path, and is swapped atomically for all its workers.

Semantics: the latest record per model name is the desired state (rollback = republish an old
record; tombstone = stop serving, events are then held). At start the topic is read up to
its high watermark before anything is scored, and only the latest record is loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from edml.core import metrics
from edml.core.config import Settings
from edml.kafka.clients import make_consumer
from edml.kafka.reading import EndOffsets
from edml.model_topic.stores import (
    ArtifactMissing,
    FileStore,
    StoreError,
    StoreUnavailable,
    fetch_artifact,
    open_store,
)
from edml.schemas.records import ModelRecord
from edml.schemas.serde import DecodeError, model_record_serde
from edml.scoring.loader import ModelRejected, load_model
from edml.scoring.model_store import ModelStore
from edml.scoring.serving import ActiveModels, LoadedModel, ServingSet
from edml.scoring.status import StatusReporter

log = logging.getLogger("edml.models")

RecordCheck = Callable[[ModelRecord], None]  # raises ModelRejected (e.g. a bad signature)
MAX_BACKOFF_S = 10.0


class ModelSubscriber:
    """Keeps ``active`` serving the desired model of ``model_name``."""

    def __init__(
        self,
        settings: Settings,
        active: ActiveModels,
        store: ModelStore,
        status: StatusReporter,
        workdir: Path,
        model_name: str | None = None,
        check_record: RecordCheck | None = None,
        first_backoff_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.active = active
        self.store = store
        self.status = status
        self.workdir = workdir
        self.model_name = model_name or settings.model_name
        self.check_record = check_record
        self.first_backoff_s = first_backoff_s
        self._serde = model_record_serde()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edml-model-subscriber", daemon=True)
        self._pending: ModelRecord | None = None
        self._pending_tombstone = False
        self._attempt = 0
        self._next_try = 0.0

    def start(self) -> None:
        """Start reading the model topic in the background."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout)

    # --- reading the topic ---------------------------------------------------------------------

    def _run(self) -> None:
        consumer = make_consumer(self.settings, group_id="edml-model-subscriber")
        try:
            ends = self._assign_all(consumer)
            self._bootstrap(consumer, ends)
            while not self._stop.is_set():
                msg = consumer.poll(self._poll_timeout())
                if msg is not None:
                    self._on_message(msg)
                self._retry_pending()
        except Exception:  # the scorer must keep serving what it has; log loudly and retry
            log.exception("model subscriber failed; restarting it in 5 s")
            if not self._stop.wait(5):
                threading.Thread(target=self._run, name="edml-model-subscriber", daemon=True).start()
        finally:
            consumer.close()

    def _assign_all(self, consumer: object) -> EndOffsets:
        topic = self.settings.topics.models
        while not self._stop.is_set():
            try:
                metadata = consumer.list_topics(topic, timeout=10)
                partitions = sorted(metadata.topics[topic].partitions)
                if not partitions:
                    raise KafkaException(f"model topic {topic} has no partitions")
                ends = EndOffsets.of(consumer, [(topic, p) for p in partitions], timeout=10)
                consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
                return ends
            except KafkaException as e:
                log.warning("cannot read model topic %s yet (%s); retrying", topic, e)
                self._stop.wait(2)
        return EndOffsets({})

    def _bootstrap(self, consumer: object, ends: EndOffsets) -> None:
        """Read to the high watermarks seen at start; load only the latest record."""
        latest: ModelRecord | None = None
        tombstoned = False
        while not ends.done and not self._stop.is_set():
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            ends.passed(msg)
            if msg.error():
                continue
            parsed = self._parse(msg)
            if parsed is None:
                continue
            name, record = parsed
            if name == self.model_name:
                latest, tombstoned = record, record is None
        log.info("model topic read to its end at start: %s",
                 f"desired {self.model_name} {latest.version}" if latest else "no model yet")
        if latest is not None:
            self._set_pending(latest)
            self._retry_pending()
        elif tombstoned:
            self.active.swap(None)
        self.active.bootstrapped.set()

    def _parse(self, msg: object) -> tuple[str, ModelRecord | None] | None:
        """(model name, record or None for a tombstone), or None for an unreadable message."""
        name = (msg.key() or b"").decode(errors="replace")
        if msg.value() is None:
            return name, None
        try:
            record = self._serde.decode(msg.value())
        except DecodeError as e:
            self.status.report(name or "?", "?", "rejected", f"unreadable model record at offset {msg.offset()}: {e}")
            return None
        self.store.put_record(record)
        return record.model_name, record

    def _on_message(self, msg: object) -> None:
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log.warning("model topic: %s", msg.error())
            return
        parsed = self._parse(msg)
        if parsed is None or parsed[0] != self.model_name:
            return
        record = parsed[1]
        if record is None:
            self._retire()
        else:
            self._set_pending(record)

    def _poll_timeout(self) -> float:
        if self._pending is None:
            return 0.5
        return max(0.0, min(0.5, self._next_try - time.monotonic()))

    # --- applying a record ---------------------------------------------------------------------

    def _set_pending(self, record: ModelRecord) -> None:
        # A newer record replaces one still waiting for its artifact: desired state wins.
        self._pending, self._attempt, self._next_try = record, 0, 0.0
        self.status.report(record.model_name, record.version, "received")

    def _retire(self) -> None:
        self._pending = None
        current = self.active.current
        self.active.swap(None)
        self.store.set_active(self.model_name, None)
        metrics.set_active_model(self.model_name, None)
        self.status.report(self.model_name, current.champion.version if current else "-", "retired",
                           "tombstone on the model topic: events are held until a model is published")

    def _retry_pending(self) -> None:
        record = self._pending
        if record is None or time.monotonic() < self._next_try:
            return
        try:
            serving = self._prepare(record)
        except StoreUnavailable as e:
            self._attempt += 1
            backoff = min(MAX_BACKOFF_S, self.first_backoff_s * 2 ** (self._attempt - 1))
            self._next_try = time.monotonic() + backoff
            self.status.report(record.model_name, record.version, "retrying",
                               f"artifact store unavailable ({e.reason}); attempt {self._attempt}, "
                               f"next in {backoff:.1f}s")
            return
        except ModelRejected as e:
            self._pending = None
            self.status.report(record.model_name, record.version, "rejected", e.reason)
            return
        self._pending = None
        self.active.swap(serving)
        self.store.set_active(self.model_name, record.version)
        metrics.set_active_model(self.model_name, record.version,
                                 tuple(c.version for c in serving.challengers))
        self.status.report(record.model_name, record.version, "active")
        for challenger in serving.challengers:
            self.status.report(challenger.name, challenger.version, "active", "challenger (shadow)")
        self.status.flush()

    def _prepare(self, record: ModelRecord) -> ServingSet:
        champion = self._load(record)
        challengers = []
        for version in record.challengers:
            if version == record.version:
                continue
            challenger_record = self.store.record(record.model_name, version)
            if challenger_record is None:
                self.status.report(record.model_name, version, "rejected",
                                   "challenger version was never seen on the model topic")
                continue
            try:
                challengers.append(self._load(challenger_record))
            except ModelRejected as e:
                self.status.report(record.model_name, version, "rejected", f"challenger: {e.reason}")
        return ServingSet(champion=champion, challengers=tuple(challengers))

    def _loaded(self, record: ModelRecord) -> LoadedModel | None:
        current = self.active.current
        if current is None:
            return None
        for model in (current.champion, *current.challengers):
            if model.version == record.version and model.record.sha256 == record.sha256:
                return model
        return None

    def _load(self, record: ModelRecord) -> LoadedModel:
        """The model of ``record``: already serving, or loaded from rocksdict or the artifact store."""
        if self.check_record is not None:
            self.check_record(record)
        already = self._loaded(record)
        if already is not None:
            return LoadedModel(record=record, manifest=already.manifest, function=already.function,
                               bindings=already.bindings, output_name=already.output_name)
        started = time.monotonic()
        archive = self.store.archive(record.model_name, record.version)
        from_store = archive is None
        if archive is None:
            outside = outside_store(record.artifact_uri, self.settings.artifact_store_uri)
            if outside:
                raise ModelRejected(outside)
            try:
                archive = fetch_artifact(record.artifact_uri)
            except ArtifactMissing as e:
                raise ModelRejected(f"artifact missing: {e.reason}") from None
            except StoreUnavailable:
                raise
            except StoreError as e:
                raise ModelRejected(f"artifact store: {e.reason}") from None
        model = load_model(record, archive, self.workdir)
        self.store.put(record, archive, model.manifest.to_json())
        metrics.MODEL_LOAD.observe(time.monotonic() - started)
        log.info("loaded %s %s from %s in %.2fs", record.model_name, record.version,
                 "the artifact store" if from_store else "the model store", time.monotonic() - started)
        return model


def outside_store(uri: str, store_uri: str) -> str | None:
    """Why ``uri`` is not an artifact in the store at ``store_uri``, or None when it is.

    A record names its artifact by URI; reading any URI would let a record make the scorer read
    any local file (``file:///dev/zero`` never ends) or any bucket, so only the configured
    store is read.
    """
    try:
        store = open_store(store_uri)
    except StoreError as e:
        return f"artifact store {store_uri}: {e.reason}"
    if isinstance(store, FileStore) and uri.startswith("file://"):
        inside = Path(uri.removeprefix("file://")).resolve().is_relative_to(store.root)
    else:
        inside = uri.startswith(store.uri.rstrip("/") + "/")
    return None if inside else f"artifact {uri} is outside the artifact store {store.uri} this scorer reads"
