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

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

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
from edml.pipelines.bound import BoundPipeline, open_pipeline
from edml.schemas.records import ModelRecord
from edml.schemas.serde import DecodeError
from edml.schemas.wire import topic_serdes
from edml.scoring.loader import ModelRejected, load_model, prune_unpacked, record_problem
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
        pipeline: BoundPipeline | None = None,
        report_others: bool = True,
    ) -> None:
        self.settings = settings
        # the pipeline every model is checked against and bound to (default: the settings')
        self.pipeline = pipeline or open_pipeline(settings.pipeline, settings)
        self.active = active
        self.store = store
        self.status = status
        self.workdir = workdir
        self.model_name = model_name or settings.model_name
        self.check_record = check_record
        # whether invalid records of other model names are reported (one subscriber per process does)
        self.report_others = report_others
        self.first_backoff_s = first_backoff_s
        self._serde = topic_serdes(settings).models
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edml-model-subscriber", daemon=True)
        self._pending: ModelRecord | None = None
        self._pending_tombstone = False
        self._attempt = 0
        self._next_try = 0.0
        self._desired: str | None = None  # the desired version of model_name ("-" once retired)
        self._invalid_at_start: tuple[str, str] | None = None
        self._faulty: deque[tuple[LoadedModel, str]] = deque()
        active.on_faulty(lambda model, reason: self._faulty.append((model, reason)))

    def start(self) -> None:
        """Start reading the model topic in the background."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout)

    # --- reading the topic ---------------------------------------------------------------------

    def _run(self) -> None:
        consumer = make_consumer(self.settings, group_id=f"edml-model-subscriber-{self.settings.pipeline}")
        try:
            ends = self._assign_all(consumer)
            self._bootstrap(consumer, ends)
            while not self._stop.is_set():
                msg = consumer.poll(self._poll_timeout())
                while msg is not None:
                    # every record already fetched before one is applied: records published together (a
                    # challenger's own record, then the champion's naming it) are one change, and only
                    # the last per name is the desired state
                    self._on_message(msg)
                    msg = consumer.poll(0)
                self._retry_pending()
                self._quarantine()
        except Exception:  # the scorer must keep serving what it has; log loudly and retry
            log.exception("model subscriber failed; restarting it in 5 s")
            if not self._stop.wait(5):
                threading.Thread(target=self._run, name="edml-model-subscriber", daemon=True).start()
        finally:
            consumer.close()

    def _assign_all(self, consumer: Consumer) -> EndOffsets:
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

    def _bootstrap(self, consumer: Consumer, ends: EndOffsets) -> None:
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
                self._invalid_at_start = None  # a later valid record is the desired state
        if self._invalid_at_start is not None:
            latest, tombstoned = None, False
        log.info("model topic read to its end at start: %s",
                 f"desired {self.model_name} {latest.version}" if latest else "no model yet")
        if latest is not None:
            self._set_pending(latest)
            self._retry_pending()
        elif tombstoned:
            self.active.swap(None)
            self._report_serving()
        elif self._invalid_at_start is not None:
            self._fall_back(*self._invalid_at_start)
        self.active.bootstrapped.set()

    def _parse(self, msg: Message) -> tuple[str, ModelRecord | None] | None:
        """(model name, record or None for a tombstone), or None for a message that is not a valid record.

        A record is valid only under its own model name as key: the topic is compacted by key,
        so a record under another key would serve one name while the desired state names another.
        An invalid record under this process's model name is the desired state all the same: it
        is rejected, and the last known good version serves.
        """
        name = (msg.key() or b"").decode(errors="replace")
        if msg.value() is None:
            return name, None
        try:
            record = self._serde.decode(msg.value())
        except DecodeError as e:
            self._invalid(name, "?", f"unreadable model record at offset {msg.offset()}: {e}")
            return None
        problem = record_problem(record, name)
        if problem:
            self._invalid(name, record.version[:200], problem)
            return None
        self.store.put_record(record)
        return record.model_name, record

    def _invalid(self, name: str, version: str, reason: str) -> None:
        if name == self.model_name or self.report_others:
            self.status.report(name or "?", version, "rejected", reason)
        if name == self.model_name:
            self._pending = None
            self._desired = version
            if self.active.bootstrapped.is_set():
                self._fall_back(version, reason)
            else:  # decided once the topic is read to its end: a later record may follow
                self._invalid_at_start = (version, reason)

    def _on_message(self, msg: Message) -> None:
        error = msg.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("model topic: %s", error)
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
        self._desired = record.version
        self.status.report(record.model_name, record.version, "received")

    def _retire(self) -> None:
        self._pending = None
        self._desired = "-"
        current = self.active.current
        self.active.swap(None)
        self.store.set_active(self.model_name, None)
        metrics.set_active_model(self.model_name, None)
        self.status.report(self.model_name, current.champion.version if current else "-", "retired",
                           "tombstone on the model topic: events are held until a model is published")
        self._report_serving()

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
            self._fall_back(record.version, e.reason)
            return
        self._pending = None
        self._activate(serving)

    def _activate(self, serving: ServingSet, reason: str = "") -> None:
        """Swap ``serving`` in, remember it served, prune what no longer serves, and say so."""
        champion = serving.champion
        self.active.swap(serving)
        self.store.mark_served(self.model_name, champion.version)
        self.store.set_active(self.model_name, champion.version)  # prunes what is no longer kept
        metrics.set_active_model(self.model_name, champion.version, tuple(c.version for c in serving.challengers))
        self.status.report(champion.name, champion.version, "active", reason)
        for challenger in serving.challengers:
            self.status.report(challenger.name, challenger.version, "active", "challenger (shadow)")
        self._prune(serving)
        self._report_serving()

    def _prune(self, serving: ServingSet) -> None:
        keep = set(self.store.versions(self.model_name))
        keep.update(m.version for m in (serving.champion, *serving.challengers))
        for folder in prune_unpacked(self.workdir, self.model_name, keep):
            log.info("removed the unpacked files of %s (no longer kept)", folder)

    def _report_serving(self) -> None:
        """Desired vs serving, one status event: what ``edml models status`` shows for this process."""
        current = self.active.current
        desired = self._desired or "-"
        if current is None:
            metrics.MODEL_FALLBACK.labels(self.model_name).set(0)
            self.status.report(self.model_name, "-", "held", f"no model serving (desired {desired}): events are held")
        else:
            serving = current.champion.version
            fallback = desired not in ("-", serving)
            metrics.MODEL_FALLBACK.labels(self.model_name).set(1 if fallback else 0)
            self.status.report(self.model_name, serving, "serving",
                               f"desired {desired}" + (": serving the last known good version" if fallback else ""))
        self.status.flush()

    def _fall_back(self, rejected: str, reason: str) -> None:
        """The desired version cannot serve: keep what serves, else serve the last known good version."""
        current = self.active.current
        if current is not None and current.champion.version != rejected:
            log.warning("desired %s %s cannot serve (%s); %s goes on serving", self.model_name, rejected, reason,
                        current.champion.version)
            self._report_serving()
            return
        excluding = {rejected}
        while (record := self.store.last_good(self.model_name, excluding)) is not None:
            try:
                champion = self._load(record)
            except (ModelRejected, StoreUnavailable) as e:
                self.status.report(record.model_name, record.version, "rejected",
                                   f"last known good: {getattr(e, 'reason', e)}")
                excluding.add(record.version)
                continue
            self._activate(ServingSet(champion=champion),
                           f"last known good: desired {rejected} cannot serve ({reason})")
            return
        if current is None:
            log.warning("no version of %s to fall back on: events are held", self.model_name)
        self._report_serving()

    def _quarantine(self) -> None:
        """Quarantine the models scoring reported faulty: fall back for a champion, drop a challenger."""
        while self._faulty:
            model, reason = self._faulty.popleft()
            current = self.active.current
            if current is None:
                continue
            same = [m for m in (current.champion, *current.challengers)
                    if m.version == model.version and m.record.sha256 == model.record.sha256]
            if not same:
                continue  # already swapped out
            self.store.mark_faulty(model.name, model.version, reason)
            if same[0] is current.champion:
                self.status.report(model.name, model.version, "rejected", f"quarantined: {reason}")
                self._fall_back(model.version, f"quarantined: {reason}")
            else:
                self.status.report(model.name, model.version, "rejected", f"challenger quarantined: {reason}")
                self.active.swap(ServingSet(current.champion,
                                            tuple(c for c in current.challengers if c is not same[0])))
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
        faulty = self.store.faulty(record.model_name, record.version)
        if faulty is not None:
            raise ModelRejected(f"quarantined earlier by this process: {faulty}")
        already = self._loaded(record)
        if already is not None:
            return dataclasses.replace(already, record=record)
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
        model = load_model(record, archive, self.workdir, self.pipeline)
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
