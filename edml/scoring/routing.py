"""Several models in one scorer: routes by an event's field, fallbacks, and ensembles.

A routed pipeline (``[routing]``, fallbacks or ensembles in its declaration) keeps one
:class:`~edml.scoring.serving.ActiveModels` per model name (:class:`ModelSet`), each swapped on its
own by its subscriber. A batch is split by route into numpy index arrays (:func:`route_index`),
each model is called once per batch on its group's columns, and the predictions are written
back in source order (``PredictionEncoder``). Rejected alternative: one model call per event or a
Python loop over events; a group's rows are taken with one fancy index per column.

Fallbacks: a row breaking a declared constraint (kept by the decoder) or its model's inferred one
only on fields the model's fallback does not read is scored by the fallback (role ``fallback``,
with the reason); an event whose model is retired goes to the fallback, or without one becomes a
``no-model`` dead letter. Ensembles: each member scores the group once (role ``member``, to the
shadow topic); the combined prediction (role ``champion``) names every member and version.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from edml.core import metrics
from edml.pipelines.constraints import violated_fields
from edml.pipelines.declaration import Ensemble, Pipeline
from edml.pipelines.events import EventBatch
from edml.scoring.batch import (
    BatchScorer,
    Clock,
    FaultPolicy,
    ModelCall,
    RowFailure,
    ScoredBatch,
    ScoredRows,
    call_batch,
    score_rows,
    wall_clock,
)
from edml.scoring.serving import ActiveModels, LoadedModel, ServingSet

log = logging.getLogger("edml.scorer")


class ModelSet:
    """The serving set of every model name of a routed pipeline, each swapped on its own."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.by_name = {name: ActiveModels() for name in pipeline.models}
        self.required = pipeline.required_models
        self._started = False

    def current(self, name: str) -> ServingSet | None:
        """What serves ``name`` now (None: nothing, e.g. retired or not yet loaded)."""
        return self.by_name[name].current

    def ready(self) -> bool:
        """True once every model was read from the model topic and every model events are routed to serves.

        Only the start holds: once ready it stays so, and an event of a model retired afterwards
        goes to its fallback or becomes a ``no-model`` dead letter instead of holding every route.
        """
        if not self._started:
            self._started = all(a.bootstrapped.is_set() for a in self.by_name.values()) and all(
                self.by_name[name].current is not None for name in self.required)
        return self._started


def route_index(pipeline: Pipeline, columns: dict[str, np.ndarray], nulls: dict[str, np.ndarray],
                n: int) -> np.ndarray:
    """Per row, the index in ``pipeline.targets`` of the model (or ensemble) that scores it.

    The first routing field whose value is in a route picks the route; a row no route picks goes
    to the default (index 0). One ``np.isin`` per field and route.
    """
    out = np.zeros(n, dtype=np.int64)
    routing = pipeline.routing
    if routing is None or not routing.routes:
        return out
    decided = np.zeros(n, dtype=bool)
    targets = pipeline.targets
    for name in routing.fields:
        values = columns[name]
        absent = nulls.get(name)
        for route in routing.routes:
            hit = np.isin(values, np.asarray(route.values, dtype=values.dtype if values.dtype != object else object))
            hit &= ~decided
            if absent is not None:
                hit &= ~absent
            out[hit] = targets.index(route.model)
            decided |= hit
    return out


def combine(rule: str, outputs: Sequence[np.ndarray], weights: Sequence[float] = ()) -> np.ndarray:
    """The members' outputs (one array each, same shape) combined per row by ``rule``.

    ``mean``, ``weighted`` (mean with ``weights``, normalised), ``median``; ``most-confident``: the
    output farthest from 0.5 (binary classification: the member most sure either way).
    """
    stack = np.stack([np.asarray(o, dtype=np.float64) for o in outputs])
    if rule == "mean":
        return stack.mean(axis=0)
    if rule == "weighted":
        w = np.asarray(weights, dtype=np.float64)
        w = w / w.sum()
        return np.tensordot(w, stack, axes=1)
    if rule == "median":
        return np.median(stack, axis=0)
    if rule == "most-confident":
        pick = np.abs(stack - 0.5).argmax(axis=0)
        return np.take_along_axis(stack, pick[None, ...], axis=0)[0]
    raise ValueError(f"unknown combine rule {rule!r}")


def _take(columns: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    return {k: v[rows] for k, v in columns.items()}


class RoutedScorer(BatchScorer):
    """Scores a batch of a routed pipeline: one call per model per batch, groups by route (see the module)."""

    def __init__(self, models: ModelSet, faults: FaultPolicy | None = None, call: ModelCall = call_batch,
                 clock: Clock = wall_clock) -> None:
        super().__init__(ActiveModels(), faults, None, call, clock)
        self.models = models
        self.pipeline = models.pipeline

    def _report_faulty(self, model: LoadedModel, reason: str) -> None:
        self.models.by_name[model.name].report_faulty(model, reason)

    def score(self, batch: EventBatch) -> ScoredBatch:
        """Every group's predictions, fallbacks and dead letters for the batch."""
        n = len(batch)
        out = ScoredBatch(batch)
        if not n:
            return out
        invalid = None
        if batch.violations:
            invalid = np.zeros(n, dtype=bool)
            invalid[np.fromiter(batch.violations, dtype=np.int64, count=len(batch.violations))] = True
        targets = self.pipeline.targets
        assign = route_index(self.pipeline, batch.columns, batch.nulls, n)
        for t, target in enumerate(targets):
            rows = np.arange(n) if len(targets) == 1 else np.flatnonzero(assign == t)
            if not len(rows):
                continue
            if invalid is not None and invalid[rows].any():
                bad = rows[invalid[rows]]
                rows = rows[~invalid[rows]]
                self._invalid_rows(target, bad, batch, out)
            if not len(rows):
                continue
            if target in self.pipeline.ensembles:
                self._ensemble(self.pipeline.ensembles[target], rows, batch, out)
            else:
                self._model(target, rows, batch, out)
        out.scored_at = self.clock(batch.timestamps_ms)
        metrics.BATCH_SIZE.observe(n)
        return out

    def _invalid_rows(self, target: str, rows: np.ndarray, batch: EventBatch, out: ScoredBatch) -> None:
        """Rows breaking a declared constraint: to the model's fallback when it reads none of the broken fields."""
        fallback = self.pipeline.fallbacks.get(target)
        serving = self.models.current(fallback) if fallback is not None else None
        if serving is None:
            out.unscored.append((rows, "out-of-range", ""))  # the decoder's reasons, as without fallbacks
            return
        broken = np.zeros(len(rows), dtype=bool)
        for b in serving.champion.bindings:
            mask = batch.violated.get(b.source)
            if mask is not None:
                broken |= mask[rows]
        if broken.any():
            out.unscored.append((rows[broken], "out-of-range", ""))
        rows = rows[~broken]
        if len(rows):
            reasons = np.array([batch.violations[i] for i in rows.tolist()], dtype=object)
            assert fallback is not None
            self._model(fallback, rows, batch, out, "fallback", reasons)

    def _model(self, name: str, rows: np.ndarray, batch: EventBatch, out: ScoredBatch, role: str = "champion",
               reasons: np.ndarray | None = None) -> None:
        serving = self.models.current(name)
        if serving is None:  # retired (tombstone) or never active: its fallback, else a dead letter
            fallback = self.pipeline.fallbacks.get(name)
            if fallback is not None:
                why = np.full(len(rows), f"{name} is not serving (retired)", dtype=object)
                self._model(fallback, rows, batch, out, "fallback", why if reasons is None else reasons)
            else:
                out.unscored.append((rows, "no-model", f"no model {name} is serving (retired or never published)"))
            return
        columns, nulls = _take(batch.columns, rows), _take(batch.nulls, rows)
        scored = score_rows(serving.champion, role, columns, len(rows), self.call, nulls)
        scored.index, scored.reasons = rows, reasons
        fallback = self.pipeline.fallbacks.get(name)
        if scored.rejected and fallback is not None and self.models.current(fallback) is not None:
            self._reject_to_fallback(scored, fallback, columns, nulls, batch, out)
        out.scored.append(scored)
        self._count(scored, len(rows))
        if role == "champion":
            for challenger in serving.challengers:
                shadow = score_rows(challenger, "challenger", columns, len(rows), self.call, nulls)
                shadow.index = rows
                out.scored.append(shadow)
                self._count(shadow, len(rows))

    def _reject_to_fallback(self, scored: ScoredRows, fallback: str, columns: dict[str, Any],
                            nulls: dict[str, Any], batch: EventBatch, out: ScoredBatch) -> None:
        """Rows outside the model's inferred constraints, on fields its fallback does not read: to the fallback."""
        serving = self.models.current(fallback)
        assert serving is not None and scored.index is not None
        model = scored.model
        group = np.concatenate([f.rows for f in scored.rejected])
        reasons = {int(f.rows[0]): f.reason for f in scored.rejected}
        reads = {b.source for b in serving.champion.bindings}
        broken = violated_fields(_take(columns, group), _take(nulls, group), model.constraints, len(group))
        stays = np.zeros(len(group), dtype=bool)
        for field_name, mask in broken.items():
            if field_name in reads:
                stays |= mask
        moved = group[~stays]
        if not len(moved):
            return
        moving = set(moved.tolist())
        scored.rejected = [f for f in scored.rejected if int(f.rows[0]) not in moving]
        why = np.array([f"{model.name} {model.version}: {reasons[i]}" for i in moved.tolist()], dtype=object)
        self._model(fallback, scored.index[moved], batch, out, "fallback", why)

    def _ensemble(self, ens: Ensemble, rows: np.ndarray, batch: EventBatch, out: ScoredBatch) -> None:
        present = [(m, s.champion) for m in ens.members if (s := self.models.current(m)) is not None]
        if not present:
            out.unscored.append((rows, "no-model", f"no member of ensemble {ens.name} is serving "
                                                   f"({', '.join(ens.members)})"))
            return
        columns, nulls = _take(batch.columns, rows), _take(batch.nulls, rows)
        members = []
        for _, model in present:
            scored = score_rows(model, "member", columns, len(rows), self.call, nulls)
            scored.index = rows
            out.scored.append(scored)
            self._count(scored, len(rows))
            members.append(scored)
        weights = [w for m, w in zip(ens.members, ens.weights, strict=True) if self.models.current(m) is not None] \
            if ens.weights else []
        first = members[0]
        ok = np.logical_and.reduce([m.ok for m in members])
        values = {}
        for spec in first.model.outputs:
            if spec.dtype.startswith(("float", "bfloat", "double")):
                values[spec.name] = combine(ens.combine, [m.values[spec.name] for m in members], weights)
            else:  # a label or a count: the first member's (a mean of categories means nothing)
                values[spec.name] = first.values[spec.name]
        failures: list[RowFailure] = []
        seen = np.zeros(len(rows), dtype=bool)
        for m in members:
            for f in m.rejected + m.failures:
                new = f.rows[~seen[f.rows]]
                if len(new):
                    failures.append(RowFailure(new, f.kind, f"member {m.model.name} {m.model.version}: {f.reason}"))
                    seen[new] = True
        versions = "+".join(m.model.version for m in members)
        combined = dataclasses.replace(first.model, record=dataclasses.replace(
            first.model.record, model_name=ens.name, version=versions), constraints=())
        out.scored.append(ScoredRows(combined, "champion", values, ok & ~seen, failures, index=rows,
                                     members=[f"{m.model.name}@{m.model.version}" for m in members]))
