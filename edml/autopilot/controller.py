"""The controller: a plain loop that polls the pipeline's topics, acts, and sleeps on a stop event.

One tick: top up the recorder's archive; then, by phase (:mod:`edml.autopilot.progress`):

* idle: look for a trigger (:mod:`edml.autopilot.triggers`); on one, run: build the training set
  (:mod:`edml.autopilot.dataset`), train with the declared entry point, run the replay gate on the
  held-out traffic (:mod:`edml.autopilot.gate`), and publish the candidate as a shadow challenger
  only when it passes (signed when a signing key is given);
* waiting: the run found fewer than ``min_rows`` labelled events; the data is checked again as
  traffic is recorded, and the run goes on, or is skipped once its trigger is a cool-down old;
* shadow: compare the candidate's live windows with the champion's (``evaluation.promotion.compare``);
  after K common windows, promote it with ``evaluation.promotion.promote`` -- the rule of
  ``edml promote`` -- or retire it (the champion's record without it); retire it too when it did
  not get its K windows within ``shadow_timeout_s``.

A run that raises (the trainer, a model folder without a SavedModel, a candidate the replay cannot
load) ends with a ``failed`` step: the reason in one line on the topic, the traceback in the log,
the champion untouched, the cool-down started. The loop outlives any tick that raises.

Not a Bytewax flow: it waits minutes to hours between actions and trains for minutes; a loop with
an injectable clock lets tests compress time. At most one run at a time, by construction.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edml.autopilot.dataset import Joined, holdout_archive, join_recorded, split_in_time, training_set
from edml.autopilot.events import EventLog
from edml.autopilot.progress import IDLE, PUBLISHING, SHADOW, TRAINING, WAITING, load_progress, save_progress
from edml.autopilot.triggers import PROCEED, SKIP, WAIT, Trigger, data_verdict, next_trigger, shadow_expired
from edml.core import metrics
from edml.core.config import Settings
from edml.core.errors import OperatorError
from edml.evaluation.promotion import compare, promote
from edml.evaluation.scores import read_score_windows
from edml.kafka.reading import decode_messages, read_to_end
from edml.model_topic.history import desired_records, record_history
from edml.model_topic.publisher import publish_model, publish_record
from edml.pipelines.autopilot import AutopilotDeclaration, TrainingSet
from edml.pipelines.bound import BoundPipeline
from edml.replay.archive import EVENTS, LABELS, ArchiveReader
from edml.replay.recorder import record_topics
from edml.schemas.records import AutopilotEvent, DriftAlert, ModelRecord
from edml.schemas.serde import DecodeError
from edml.schemas.wire import topic_serdes

log = logging.getLogger("edml.autopilot")
Trainer = Callable[..., Path]
REASON_CHARS = 500  # a failure's reason on the topic; the whole story is in the log


class CandidateError(Exception):
    """The trainer's output is not a model folder the controller can gate."""


def one_line(error: BaseException) -> str:
    """``Type: message`` on one line, cut at :data:`REASON_CHARS`."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 3] + "..."


def load_trainer(declaration: AutopilotDeclaration) -> Trainer:
    """The declared ``module:function``; an OperatorError naming it when it cannot be imported."""
    try:
        found = getattr(importlib.import_module(declaration.trainer_module), declaration.trainer_function)
    except (ImportError, AttributeError) as e:
        raise OperatorError(f"[autopilot] trainer {declaration.trainer!r} cannot be loaded: {e}") from None
    if not callable(found):
        raise OperatorError(f"[autopilot] trainer {declaration.trainer!r} is not a function")
    return found  # type: ignore[no-any-return]


class Controller:
    """The continuous-training controller of one pipeline (``settings`` are the pipeline's)."""

    def __init__(self, settings: Settings, bound: BoundPipeline, *, signing_key: str | None = None,
                 clock: Callable[[], float] = time.time, poll_s: float = 5.0, record: bool = True) -> None:
        declaration = bound.pipeline.autopilot
        if declaration is None:
            raise bound.pipeline.error("declares no [autopilot] table: add one to run edml autopilot (see README)")
        if bound.pipeline.labels is None:
            raise bound.pipeline.error("[autopilot] needs [labels]: candidates are trained on labelled traffic")
        if settings.model_public_key and not signing_key:
            raise OperatorError("scorers verify record signatures (model_public_key is set): pass --signing-key")
        self.settings, self.bound, self.declaration = settings, bound, declaration
        self.name = settings.model_name
        self.signing_key = signing_key
        self.clock, self.poll_s, self.record = clock, poll_s, record
        self.trainer = load_trainer(declaration)
        self.folder = settings.state_dir / "autopilot"
        self.archive = declaration.archive or self.folder / "archive"
        self.progress = load_progress(settings.state_dir)
        self.events = EventLog(settings)
        self._archive_grew = True  # a waiting run checks the data once after a (re)start
        self._stage = "data"  # what the current run is doing: a failure's reason names it

    # --- the loop ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick every ``poll_s`` until ``stop`` is set."""
        if self.progress.phase != IDLE:
            self._emit("resumed", f"restarted in phase {self.progress.phase}",
                       figures={"attempt": self.progress.attempt})
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a broker away for a while, a store that refuses: the next tick tries again
                log.exception("autopilot tick of %s failed; trying again in %g s", self.bound.name, self.poll_s)
            stop.wait(self.poll_s)

    def tick(self) -> None:
        """One pass: record, then act on the phase."""
        if self.record:
            self.top_up_archive()
        phase = self.progress.phase
        metrics.AUTOPILOT_TRAINING.labels(self.bound.name).set(0 if phase == IDLE else 1)
        if phase in (TRAINING, PUBLISHING):
            self._run_safely()
        elif phase == WAITING:
            self._run_safely(waiting=True)
        elif phase == SHADOW:
            self._watch_shadow()
        else:
            self._watch_triggers()

    def top_up_archive(self) -> None:
        """Append what the input and label topics got since the last tick to the archive."""
        stats = record_topics(self.settings, self.archive, [EVENTS, LABELS], stop_at_end=True)
        self._archive_grew = self._archive_grew or stats.total > 0

    def now_ms(self) -> int:
        """The controller's clock, epoch ms."""
        return int(self.clock() * 1000)

    def _save(self) -> None:
        save_progress(self.settings.state_dir, self.progress)

    def _emit(self, step: str, reason: str, *, figures: Mapping[str, float] | None = None,
              details: dict[str, str] | None = None) -> None:
        p = self.progress
        self.events.write(AutopilotEvent(self.bound.name, self.name, p.run_id, step, self.now_ms(), reason,
                                         p.champion, p.candidate, {k: float(v) for k, v in (figures or {}).items()},
                                         details or {}))

    def _champion(self) -> ModelRecord | None:
        return desired_records(self.settings).get(self.name)

    # --- idle: triggers -----------------------------------------------------------------------------

    def _new_alerts(self) -> list[DriftAlert]:
        messages = read_to_end(self.settings, self.settings.topics.alerts)
        fresh = messages[self.progress.alerts_seen:]
        self.progress.alerts_seen = len(messages)
        serde = topic_serdes(self.settings).alerts
        decoded, _ = decode_messages(fresh, serde.decode, DecodeError, log_as="a DriftAlert")
        return [alert for _, alert in decoded]

    def _watch_triggers(self) -> None:
        champion = self._champion()
        if champion is None:
            return  # nothing serves yet: nothing to retrain against
        alerts = self._new_alerts()
        trigger = next_trigger(now_ms=self.now_ms(), last_run_ms=self.progress.last_run_ms,
                               last_end_ms=self.progress.last_end_ms, new_alerts=alerts,
                               windows=read_score_windows(self.settings, self.name), model_name=self.name,
                               champion=champion.version, declaration=self.declaration)
        if trigger is None:
            self._save()  # the alerts seen
            return
        self.start(trigger, champion)
        self._run_safely()

    def start(self, trigger: Trigger, champion: ModelRecord) -> None:
        """Begin a run for ``trigger`` (its progress saved before anything else happens)."""
        run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.clock())) + "-" + uuid.uuid4().hex[:6]
        self.progress = dataclasses.replace(self.progress, phase=TRAINING, run_id=run_id, attempt=0,
                                            trigger=trigger.kind, trigger_reason=trigger.reason,
                                            champion=champion.version, candidate="", windows_seen=0,
                                            shadow_since_ms=None, last_run_ms=self.now_ms())
        self._save()
        self._emit("trigger", trigger.reason, details={"kind": trigger.kind})

    # --- a run: data, training, gate, publication ----------------------------------------------------

    def _end(self, decision: str, reason: str, figures: dict[str, float] | None = None, *, step: str = "decision",
             details: dict[str, str] | None = None, cool_down: bool = True) -> None:
        self._emit(step, reason, figures=figures, details={"decision": decision, **(details or {})})
        metrics.AUTOPILOT_DECISIONS.labels(self.bound.name, decision).inc()
        self.progress = dataclasses.replace(self.progress, phase=IDLE,
                                            last_end_ms=self.now_ms() if cool_down else self.progress.last_end_ms)
        self._save()

    def _run_safely(self, *, waiting: bool = False) -> None:
        """Go on with the run (``waiting``: re-check its data first); a run that raises ends ``failed``."""
        self._stage = "data"
        try:
            self._wait_for_data() if waiting else self._run()
        except Exception as e:
            log.exception("autopilot run %s of %s failed while %s", self.progress.run_id, self.bound.name,
                          self._stage)
            self._fail(e)

    def _fail(self, error: Exception) -> None:
        p = self.progress
        if p.phase == PUBLISHING and p.candidate and self._published(p.candidate):
            return  # its record is out: the next tick enters the shadow phase, as after a restart
        self._end("failed", f"{p.candidate or 'the run'} failed at {self._stage}: {one_line(error)}; nothing published",
                  step="failed", details={"stage": self._stage, "error": type(error).__name__})

    def _join(self) -> Joined:
        joined = join_recorded(ArchiveReader(self.archive), self.bound, self.settings, self.declaration.data_window_ms)
        self._archive_grew = False
        return joined

    def _wait_for_data(self) -> None:
        """A waiting run: quiet until enough labelled events are recorded (it goes on) or its trigger is stale."""
        p = self.progress
        since = p.last_run_ms if p.last_run_ms is not None else self.now_ms()
        stale = data_verdict(0, self.now_ms(), since, self.declaration) == SKIP
        if not (stale or self._archive_grew):
            return
        joined = self._join()
        if data_verdict(len(joined.rows), self.now_ms(), since, self.declaration) != WAIT:
            self._run(joined)

    def _run(self, joined: Joined | None = None) -> None:
        p = self.progress
        if p.phase == PUBLISHING and self._published(p.candidate):
            self._enter_shadow("found on the model topic after a restart: not published again")
            return
        if joined is None:
            joined = self._join()
        n, upto = len(joined.rows), split_in_time(len(joined.rows), self.declaration.holdout)
        since = p.last_run_ms if p.last_run_ms is not None else self.now_ms()
        verdict = data_verdict(n, self.now_ms(), since, self.declaration)
        min_rows, cooldown_s = self.declaration.min_rows, self.declaration.cooldown_ms / 1000
        sizes = {"recorded": joined.recorded, "in_window": joined.in_window, "labelled": n,
                 "train": upto, "holdout": n - upto, "undecodable": joined.undecodable}
        waits = f"; fewer than min_rows {min_rows}: waiting up to {cooldown_s:g} s for more" if verdict == WAIT else ""
        self._emit("data", f"{n} labelled events in the window, {upto} to train on, {n - upto} held out (newest)"
                           f"{waits}", figures=sizes,
                   details={"window_start": str(joined.window_start), "window_end": str(joined.window_end),
                            "archive": str(self.archive)})
        if verdict == WAIT:
            p.phase = WAITING
            self._save()
            return
        if verdict == SKIP:  # nothing trained: no cool-down (a trigger that still holds may start the next run)
            waited = (self.now_ms() - since) / 1000
            self._end("skipped", f"only {n} labelled events in the window; min_rows is {min_rows}"
                                 + (f" (waited {waited:g} s)" if waited > 0 else ""), cool_down=False)
            return
        assert verdict == PROCEED
        p.phase, p.attempt = TRAINING, p.attempt + 1
        self._save()
        champion = self._champion()
        work = self.folder / "runs" / p.run_id
        shutil.rmtree(work, ignore_errors=True)  # a killed attempt's leftovers
        work.mkdir(parents=True)
        self._stage = "training"
        train_set = training_set(joined, self.bound, upto)
        model_dir = self._train(train_set, work / "model")
        version = f"ap-{p.run_id}-{p.attempt}"
        p.candidate = version
        self._save()
        self._stage = "gate"
        outcome = self._gate(joined, upto, champion, model_dir, version, work)
        if outcome is None:
            return
        p.phase = PUBLISHING  # before the record is produced: a restart looks for it instead
        self._save()
        self._stage = "publishing"
        # the replay gate compared both versions on the same events; the publish gate's metric check
        # would compare figures measured on different data (force skips that check only)
        record = publish_model(self.settings, model_dir, self.name, version=version, force=True,
                               signing_key=self.signing_key, pipeline=self.bound,
                               then=lambda r: [self._with_challenger(champion, r.version)] if champion else [])
        signed = " (signed)" if record.signature_ed25519 else ""
        self._emit("published", f"{version} published{signed} as a shadow challenger of {p.champion or 'nothing'}",
                   details={"artifact_uri": record.artifact_uri, "sha256": record.sha256})
        self._enter_shadow("")

    def _train(self, train_set: TrainingSet, out: Path) -> Path:
        started = time.monotonic()
        returned = self.trainer(train_set, out, **self.declaration.params)
        seconds = time.monotonic() - started
        if not isinstance(returned, str | Path) or not (Path(returned) / "saved_model" / "saved_model.pb").is_file():
            raise CandidateError(f"{self.declaration.trainer} returned {returned!r}, not a model folder with "
                                 "saved_model/saved_model.pb")
        folder = Path(returned)
        try:
            trained = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            trained = {}
        figures = {k: float(v) for k, v in trained.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        figures["train_seconds"] = seconds
        self._emit("trained", f"trained on {len(train_set)} events in {seconds:.1f} s with {self.declaration.trainer}",
                   figures=figures, details={"model_dir": str(folder)})
        return folder

    def _gate(self, joined: Any, upto: int, champion: ModelRecord | None, model_dir: Path, version: str,
              work: Path) -> Any:
        from edml.autopilot.gate import replay_gate

        archive = holdout_archive(joined, self.bound, upto, work / "holdout")
        outcome = replay_gate(self.settings, self.bound, archive, champion, model_dir, version,
                              self.declaration.tolerance, work / "gate")
        figures = {"events": outcome.events, "candidate_loss": outcome.candidate.loss or float("nan")}
        if outcome.champion is not None and outcome.champion.loss is not None:
            figures["champion_loss"] = outcome.champion.loss
        self._emit("gate", outcome.decision.reason, figures=figures,
                   details={"passed": str(outcome.decision.passed).lower()})
        if not outcome.decision.passed:
            self._end("refused", f"{version} not published: {outcome.decision.reason}")
            return None
        return outcome

    def _published(self, version: str) -> bool:
        return any(r.version == version for r in record_history(self.settings, self.name))

    def _signed(self, record: ModelRecord) -> ModelRecord:
        """``record`` re-signed with the signing key (its bytes changed), or unsigned without one."""
        record = dataclasses.replace(record, published_at=self.now_ms(), signature_ed25519=None)
        if self.signing_key is None:
            return record
        from edml.model_topic.signing import read_key, sign_record

        return sign_record(record, read_key(self.signing_key))

    def _with_challenger(self, champion: ModelRecord, version: str) -> ModelRecord:
        """The champion's record with ``version`` among its challengers: the candidate scores in shadow."""
        return self._signed(dataclasses.replace(
            champion, challengers=[v for v in champion.challengers if v != version] + [version]))

    def _enter_shadow(self, note: str) -> None:
        p = self.progress
        desired = self._champion()
        if desired is not None and desired.version == p.candidate:  # killed between the two records
            previous = [r for r in record_history(self.settings, self.name) if r.version == p.champion]
            if previous:
                publish_record(self.settings, self._with_challenger(previous[-1], p.candidate))
        p.phase, p.shadow_since_ms = SHADOW, self.now_ms()
        self._save()
        if note:
            self._emit("published", f"{p.candidate} {note}")

    # --- shadow: windows, then promote or retire ------------------------------------------------------

    def _watch_shadow(self) -> None:
        p = self.progress
        desired = self._champion()
        if desired is None or desired.version != p.champion:
            now = desired.version if desired is not None else "nothing"
            self._end("abandoned", f"the champion changed to {now} while {p.candidate} was in shadow")
            return
        k, margin = self.declaration.shadow_windows, self.declaration.margin
        comparison = compare(read_score_windows(self.settings, self.name), self.name, p.champion, p.candidate, k,
                             margin)
        if len(comparison.windows) != p.windows_seen:
            p.windows_seen = len(comparison.windows)
            self._save()
            self._emit("windows", comparison.verdict(),
                       figures={"windows": len(comparison.windows), "wanted": k,
                                "champion_loss": comparison.champion.loss,
                                "candidate_loss": comparison.challenger.loss})
        if not comparison.enough_windows:
            if p.shadow_since_ms is None:  # progress kept before the time limit existed
                p.shadow_since_ms = self.now_ms()
                self._save()
            elif shadow_expired(self.now_ms(), p.shadow_since_ms, self.declaration):
                self._retire(desired, p.candidate)
                self._end("retired", f"{p.candidate} retired: {len(comparison.windows)} of {k} live windows in "
                                     f"{(self.now_ms() - p.shadow_since_ms) / 1000:g} s in shadow; shadow_timeout_s "
                                     f"is {self.declaration.shadow_timeout_ms / 1000:g}",
                          {"windows": len(comparison.windows), "wanted": k})
            return
        figures = {"champion_loss": comparison.champion.loss, "candidate_loss": comparison.challenger.loss}
        if comparison.challenger_wins:
            # decided on the comparison just reported, by edml promote's rule; promote() writes the records
            # (its own reading of the topic may already hold a newer window)
            result = promote(self.settings, self.name, p.candidate, last=k, margin=margin, force=True,
                             signing_key=Path(self.signing_key) if self.signing_key else None, now_ms=self.now_ms())
            if result.promoted:
                self._end("promoted", f"{p.candidate} promoted over {p.champion}: {comparison.verdict()}", figures)
                return
        self._retire(desired, p.candidate)
        self._end("retired", f"{p.candidate} retired: {comparison.verdict()}", figures)

    def _retire(self, champion: ModelRecord, version: str) -> None:
        """The champion's record without ``version``: scorers stop scoring it in shadow."""
        if version in champion.challengers:
            publish_record(self.settings, self._signed(dataclasses.replace(
                champion, challengers=[v for v in champion.challengers if v != version])))
