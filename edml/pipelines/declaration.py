"""Pipeline declarations: what a pipeline reads, which model scores it, and what its fields must be.

A pipeline is declared in TOML, either as ``pipelines/NAME.toml`` (the folder ``EDML_PIPELINES_DIR``,
default ``pipelines`` in the working directory) or as a table ``[pipelines.NAME]`` in ``edml.toml``
(``EDML_CONFIG``); the built-in ``taxi`` pipeline ships with edml (``taxi.toml`` beside this module)
and is the default. A name declared in both places is refused: one name, one declaration.

Every mistake in a declaration is an :class:`PipelineError` (an operator mistake: exit 2) whose
one line names the pipeline and the field. :func:`check_declaration` checks a declaration against
its input schema (fields that exist, constraints that fit their types) before anything is read;
:mod:`edml.pipelines.signature` checks it against a model.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edml.core.errors import OperatorError
from edml.pipelines.alerts import AlertRule, RuleError, parse_rule, rule_problems
from edml.pipelines.autopilot import AutopilotDeclaration, parse_autopilot
from edml.pipelines.constraints import DEFAULT_MARGIN, Constraint, constraint_problems
from edml.pipelines.figures import TASKS
from edml.schemas.columnar import FieldSpec, UnsupportedSchema, flat_fields
from edml.schemas.serde import SCHEMA_DIR

DEFAULT_PIPELINE = "taxi"
BUILT_IN_DIR = Path(__file__).parent
# what every prediction carries beside the key and the outputs (edml.pipelines.predictions.LINEAGE)
LINEAGE_FIELDS = ("model_name", "model_version", "event_time", "scored_at", "latency_ms", "role")
# the topics a pipeline writes, each its own (``[topics]`` may name them; see edml.pipelines.bound)
TOPIC_ROLES = ("predictions", "shadow_predictions", "dead_letter", "evaluations", "scores", "alerts",
               "prediction_alerts", "autopilot")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PipelineError(OperatorError):
    """A mistake in a pipeline declaration; the message is one line naming the pipeline and the field."""


@dataclass(frozen=True)
class SchemaSource:
    """Where a topic's Avro schema is: an ``.avsc`` file, one of edml's own schemas, or a registry subject."""

    path: Path | None = None
    builtin: str | None = None  # ``edml:Name``: schemas/avro/Name.avsc
    subject: str | None = None

    def describe(self) -> str:
        """Where the schema comes from, as written in a declaration."""
        if self.subject is not None:
            return f"registry subject {self.subject}"
        return f"edml:{self.builtin}" if self.builtin is not None else str(self.path)


@dataclass(frozen=True)
class InputDeclaration:
    """The topic a pipeline scores: its schema, the record field that keys it and the event-time field."""

    topic: str
    schema: SchemaSource
    key: str
    event_time: str


@dataclass(frozen=True)
class Labels:
    """Where the truth arrives, for evaluation and replay reports."""

    topic: str
    schema: SchemaSource
    key: str
    field: str
    task: str = "regression"
    threshold: float = 0.5  # binary: a score at or above it counts as positive
    prediction: str = ""  # the prediction field compared with the label; empty: the model's first output
    time: str = ""  # the label record's event-time field (epoch ms); empty: the label message's timestamp


COMBINE_RULES = ("mean", "weighted", "median", "most-confident")


@dataclass(frozen=True)
class Route:
    """Events whose routing field holds one of ``values`` go to ``model`` (a model or an ensemble name)."""

    model: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Routing:
    """Which model scores an event: the first of ``fields`` whose value is in a route picks it, else ``default``."""

    fields: tuple[str, ...]
    default: str
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True)
class Ensemble:
    """An output combining its members' outputs per event (see :data:`COMBINE_RULES`)."""

    name: str
    members: tuple[str, ...]
    combine: str = "mean"
    weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """One pipeline declaration (see the README's "Pipelines" section for the TOML)."""

    name: str
    declared_in: str
    input: InputDeclaration
    models: tuple[str, ...]
    inputs: dict[str, str] = field(default_factory=dict)  # model input -> record field, where they differ
    outputs: dict[str, str] = field(default_factory=dict)  # prediction field -> model output, where renamed
    prediction_record: str = ""
    constraints: tuple[Constraint, ...] = ()
    labels: Labels | None = None
    description: str = ""
    text: str = ""  # the declaration as written
    topics: dict[str, str] = field(default_factory=dict)  # role -> topic name, where not derived from the name
    alerts: tuple[AlertRule, ...] = ()
    target: str = ""  # [model] name: a model or an ensemble; empty: models[0]
    fallbacks: dict[str, str] = field(default_factory=dict)  # model -> the model scoring what it cannot
    optional: tuple[str, ...] = ()  # models the scorer does not wait for at start
    routing: Routing | None = None
    ensembles: dict[str, Ensemble] = field(default_factory=dict)
    autopilot: AutopilotDeclaration | None = None  # [autopilot]: retrained without a person (edml autopilot)

    @property
    def model(self) -> str:
        """The pipeline's (first) model name on the model topic."""
        return self.models[0]

    @property
    def routed(self) -> bool:
        """True when the scorer serves more than one model name per event stream (routes, fallbacks, ensembles)."""
        return bool(self.routing or self.fallbacks or self.ensembles or (self.target and self.target != self.models[0]))

    @property
    def default_target(self) -> str:
        """Where an event goes when no route picks it: a model or an ensemble name."""
        if self.routing is not None:
            return self.routing.default
        return self.target or self.models[0]

    @property
    def targets(self) -> tuple[str, ...]:
        """Every model or ensemble an event may be routed to, the default first."""
        found = [self.default_target]
        for route in self.routing.routes if self.routing else ():
            if route.model not in found:
                found.append(route.model)
        return tuple(found)

    @property
    def required_models(self) -> tuple[str, ...]:
        """The models the scorer waits for at start: those events are routed to (members too), but the optional."""
        found: list[str] = []
        for target in self.targets:
            for model in self.ensembles[target].members if target in self.ensembles else (target,):
                if model not in found and model not in self.optional:
                    found.append(model)
        return tuple(found)

    def field_for(self, model_input: str) -> str:
        """The record field that feeds ``model_input`` (by default the field of the same name)."""
        return self.inputs.get(model_input, model_input)

    def error(self, message: str) -> PipelineError:
        """An operator error about this pipeline, as one line."""
        return PipelineError(f"pipeline {self.name} ({self.declared_in}): {message}")


# --- reading declarations ----------------------------------------------------------------------


def pipelines_dir(env: dict[str, str] | None = None) -> Path:
    """The folder of ``NAME.toml`` declarations: ``EDML_PIPELINES_DIR`` or ``./pipelines``."""
    found = (os.environ if env is None else env).get("EDML_PIPELINES_DIR", "pipelines")
    return Path(found)


def _config_tables(config_path: Path) -> dict[str, Any]:
    if not config_path.exists():
        return {}
    try:
        data = tomllib.loads(config_path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise PipelineError(f"{config_path}: not valid TOML ({e})") from None
    tables = data.get("pipelines", {})
    if not isinstance(tables, dict):
        raise PipelineError(f"{config_path}: pipelines must be tables [pipelines.NAME]")
    return tables


def declared_names(config_path: Path | None = None, env: dict[str, str] | None = None) -> list[str]:
    """Every pipeline name declared: built in, in the pipelines folder and in ``edml.toml``."""
    env = dict(os.environ if env is None else env)
    config_path = config_path or Path(env.get("EDML_CONFIG", "edml.toml"))
    names = {p.stem for p in BUILT_IN_DIR.glob("*.toml")}
    folder = pipelines_dir(env)
    if folder.is_dir():
        names |= {p.stem for p in folder.glob("*.toml")}
    names |= set(_config_tables(config_path))
    return sorted(names)


def load_pipeline(name: str = DEFAULT_PIPELINE, config_path: Path | None = None,
                  env: dict[str, str] | None = None) -> Pipeline:
    """The declaration of pipeline ``name`` (see the module docstring for where it is looked for)."""
    env = dict(os.environ if env is None else env)
    config_path = config_path or Path(env.get("EDML_CONFIG", "edml.toml"))
    file = pipelines_dir(env) / f"{name}.toml"
    table = _config_tables(config_path).get(name)
    if table is not None and file.is_file():
        raise PipelineError(f"pipeline {name} is declared twice, in {file} and in {config_path} [pipelines.{name}]; "
                            "keep one")
    if table is not None:
        if not isinstance(table, dict):
            raise PipelineError(f"{config_path}: [pipelines.{name}] must be a table")
        return parse_pipeline(name, table, f"{config_path} [pipelines.{name}]", config_path.resolve().parent,
                              text=_table_text(config_path, name))
    if not file.is_file():
        file = BUILT_IN_DIR / f"{name}.toml"
    if not file.is_file():
        known = ", ".join(declared_names(config_path, env)) or "none"
        raise PipelineError(f"no pipeline {name!r}: declare it in {pipelines_dir(env)}/{name}.toml or as "
                            f"[pipelines.{name}] in {config_path} (declared: {known})")
    text = file.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PipelineError(f"pipeline {name} ({file}): not valid TOML ({e})") from None
    return parse_pipeline(name, data, str(file), file.resolve().parent, text=text)


def _table_text(config_path: Path, name: str) -> str:
    # the declaration as the operator wrote it: the [pipelines.NAME] tables of edml.toml
    lines, keep = [], False
    for line in config_path.read_text().splitlines():
        header = line.strip()
        if header.startswith("["):
            keep = header.strip("[]").strip().startswith(f"pipelines.{name}")
        if keep:
            lines.append(line)
    return "\n".join(lines) + "\n"


class _Table:
    """One TOML table of a declaration, read key by key; unknown keys are mistakes."""

    def __init__(self, pipeline: str, where: str, name: str, data: Any) -> None:
        self.pipeline, self.where, self.name = pipeline, where, name
        if not isinstance(data, dict):
            raise self.error(f"[{name}] must be a table")
        self.data = dict(data)

    def error(self, message: str) -> PipelineError:
        return PipelineError(f"pipeline {self.pipeline} ({self.where}): {message}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.pop(key, default)
        if value is None:
            raise self.error(f"[{self.name}] needs {key} = \"...\"")
        if not isinstance(value, str) or not value:
            raise self.error(f"[{self.name}] {key} must be a non-empty string")
        return value

    def done(self) -> None:
        if self.data:
            raise self.error(f"[{self.name}] has unknown key(s) {sorted(self.data)}")


def _schema_source(t: _Table, base_dir: Path) -> SchemaSource:
    schema = t.data.pop("schema", None)
    subject = t.data.pop("subject", None)
    if (schema is None) == (subject is None):
        raise t.error(f"[{t.name}] needs either schema = \"file.avsc\" (or \"edml:Name\") or subject = \"...\"")
    if subject is not None:
        if not isinstance(subject, str) or not subject:
            raise t.error(f"[{t.name}] subject must be a non-empty string")
        return SchemaSource(subject=subject)
    if not isinstance(schema, str) or not schema:
        raise t.error(f"[{t.name}] schema must be a path to an .avsc file or edml:Name")
    if schema.startswith("edml:"):
        return SchemaSource(builtin=schema.removeprefix("edml:"))
    path = Path(schema)
    return SchemaSource(path=path if path.is_absolute() else base_dir / path)


def _constraint(t: _Table, field_name: str, raw: Any) -> Constraint:
    if raw == "infer":
        return Constraint(field_name, infer=True)
    if not isinstance(raw, dict):
        raise t.error(f"constraint on {field_name} must be \"infer\" or a table like {{ range = [0, 10] }}")
    c = dict(raw)
    try:
        bounds = c.pop("range", None)
        if bounds is not None and (not isinstance(bounds, list) or len(bounds) != 2
                                   or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)):
            raise ValueError("range must be [low, high] (numbers)")
        allowed = c.pop("allowed", None)
        if allowed is not None and (not isinstance(allowed, list) or not allowed):
            raise ValueError("allowed must be a non-empty list of values")
        lengths = {k: c.pop(k, None) for k in ("min_length", "max_length")}
        for k, v in lengths.items():
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"{k} must be a whole number >= 0")
        required = c.pop("required", False)
        infer = c.pop("infer", False)
        margin = c.pop("margin", DEFAULT_MARGIN)
        if not isinstance(required, bool) or not isinstance(infer, bool):
            raise ValueError("required and infer are true or false")
        if not isinstance(margin, int | float) or isinstance(margin, bool) or margin < 0:
            raise ValueError("margin must be a number >= 0")
        if c:
            raise ValueError(f"unknown key(s) {sorted(c)} (known: range, allowed, min_length, max_length, "
                             "required, infer, margin)")
    except ValueError as e:
        raise t.error(f"constraint on {field_name}: {e}") from None
    return Constraint(field_name, range=None if bounds is None else (bounds[0], bounds[1]),
                      allowed=None if allowed is None else tuple(allowed), min_length=lengths["min_length"],
                      max_length=lengths["max_length"], required=required, infer=infer, margin=float(margin))


def _mapping(t: _Table) -> dict[str, str]:
    out = {}
    for k, v in t.data.items():
        if not isinstance(v, str) or not v:
            raise t.error(f"[{t.name}] {k} must name a field (a string)")
        out[k] = v
    t.data.clear()
    return out


def parse_pipeline(name: str, data: dict[str, Any], declared_in: str, base_dir: Path, text: str = "") -> Pipeline:
    """A :class:`Pipeline` from the TOML tables of its declaration; relative schema paths are under ``base_dir``."""
    if not _NAME.match(name):
        raise PipelineError(f"pipeline name {name!r} ({declared_in}): use lowercase letters, digits, - and _")
    top = _Table(name, declared_in, "pipeline", data)
    t = _Table(name, declared_in, "input", top.data.pop("input", None) or {})
    source = InputDeclaration(topic=t.text("topic"), schema=_schema_source(t, base_dir), key=t.text("key"),
                              event_time=t.text("event_time"))
    t.done()
    m = _Table(name, declared_in, "model", top.data.pop("model", None) or {})
    names = m.data.pop("names", None)
    if names is None:
        models: tuple[str, ...] = (m.text("name"),)
    elif isinstance(names, list) and names and all(isinstance(n, str) and n for n in names):
        models = tuple(names)
    else:
        raise m.error("[model] names must be a non-empty list of model names")
    fallbacks: dict[str, str] = {}
    if "fallback" in m.data:
        fallbacks[models[0]] = m.text("fallback")
    m.done()
    target = models[0]
    models, optional, fallbacks, routing, ensembles = _serving(top, models, fallbacks)
    inputs = _mapping(_Table(name, declared_in, "inputs", top.data.pop("inputs", {})))
    outputs = _mapping(_Table(name, declared_in, "outputs", top.data.pop("outputs", {})))
    for out in outputs:
        if not _AVRO_NAME.match(out):
            raise top.error(f"[outputs] {out} is not an Avro field name")
    p = _Table(name, declared_in, "prediction", top.data.pop("prediction", {}))
    record = p.text("record", _default_record(name))
    p.done()
    c = _Table(name, declared_in, "constraints", top.data.pop("constraints", {}))
    constraints = tuple(_constraint(c, f, raw) for f, raw in c.data.items())
    labels = None
    if "labels" in top.data:
        lt = _Table(name, declared_in, "labels", top.data.pop("labels"))
        task = lt.text("task", "regression")
        if task not in TASKS:
            raise lt.error(f"[labels] task {task!r} is not one of {list(TASKS)}")
        threshold = lt.data.pop("threshold", 0.5)
        if not isinstance(threshold, int | float) or isinstance(threshold, bool):
            raise lt.error("[labels] threshold must be a number")
        labels = Labels(topic=lt.text("topic"), schema=_schema_source(lt, base_dir), key=lt.text("key"),
                        field=lt.text("field"), task=task, threshold=float(threshold),
                        prediction=lt.text("prediction", "-").strip("-"), time=lt.text("time", "-").strip("-"))
        lt.done()
    topics = _mapping(_Table(name, declared_in, "topics", top.data.pop("topics", {})))
    unknown_roles = sorted(set(topics) - set(TOPIC_ROLES))
    if unknown_roles:
        raise top.error(f"[topics] has unknown role(s) {unknown_roles} (known: {list(TOPIC_ROLES)})")
    raw_alerts = top.data.pop("alerts", {})
    if not isinstance(raw_alerts, dict):
        raise top.error("alerts must be tables [alerts.NAME] with when = [\"FIELD OP VALUE\", ...]")
    try:
        alerts = tuple(parse_rule(rule, raw) for rule, raw in raw_alerts.items())
    except RuleError as e:
        raise top.error(str(e)) from None
    autopilot = top.data.pop("autopilot", None)
    autopilot = None if autopilot is None else parse_autopilot(autopilot, f"pipeline {name} ({declared_in})", base_dir)
    if autopilot is not None and (routing or fallbacks or ensembles or (target and target != models[0])):
        # its candidate, replay gate and shadow stand in for one model; which route it replaces is not defined
        raise top.error("[autopilot] retrains the one model of a pipeline; this one serves several (routes, "
                        "fallbacks or ensembles): declare the autopilot on a single-model pipeline")
    description = top.data.pop("description", "")
    if not isinstance(description, str):
        raise top.error("description must be a string")
    top.done()
    return Pipeline(name=name, declared_in=declared_in, input=source, models=models, inputs=inputs, outputs=outputs,
                    prediction_record=record, constraints=constraints, labels=labels, description=description,
                    text=text, topics=topics, alerts=alerts, target=target, fallbacks=fallbacks,
                    optional=optional, routing=routing, ensembles=ensembles, autopilot=autopilot)


def _serving(top: _Table, declared: tuple[str, ...], fallbacks: dict[str, str]) -> tuple[
        tuple[str, ...], tuple[str, ...], dict[str, str], Routing | None, dict[str, Ensemble]]:
    """[models.NAME], [routing] and [ensembles.NAME]: every model served, the optional, fallbacks, routes, ensembles."""
    raw_models = top.data.pop("models", {})
    if not isinstance(raw_models, dict):
        raise top.error("models must be tables [models.NAME] (fallback = \"...\", optional = true)")
    optional: list[str] = []
    extra: list[str] = []
    for model, raw in raw_models.items():
        t = _Table(top.pipeline, top.where, f"models.{model}", raw)
        if "fallback" in t.data:
            fallbacks[model] = t.text("fallback")
        flag = t.data.pop("optional", False)
        if not isinstance(flag, bool):
            raise t.error(f"[models.{model}] optional is true or false")
        if flag:
            optional.append(model)
        t.done()
        extra.append(model)
    raw_ensembles = top.data.pop("ensembles", {})
    if not isinstance(raw_ensembles, dict):
        raise top.error("ensembles must be tables [ensembles.NAME] with members = [...]")
    ensembles = {ens: _ensemble(top, ens, raw) for ens, raw in raw_ensembles.items()}
    # [model] name may be an ensemble: its members are the models then
    head = [m for m in declared if m not in ensembles]
    models = tuple(dict.fromkeys([*head, *extra]))
    known = set(models)
    for ens in ensembles.values():
        if ens.name in known:
            raise top.error(f"[ensembles.{ens.name}] has the name of a model; an ensemble needs its own name")
        for member in ens.members:
            if member not in known:
                raise top.error(f"[ensembles.{ens.name}] member {member} is not a model of this pipeline (declare it "
                                "in [model] or [models.NAME])")
    if not models:
        raise top.error("[model] name is an ensemble whose members are not declared; declare them in [models.NAME]")
    for model, fallback in fallbacks.items():
        if model in ensembles:
            raise top.error(f"[model] fallback: {model} is an ensemble; a fallback is a model's")
        if fallback not in known:
            raise top.error(f"fallback of {model}: {fallback} is not a model of this pipeline (declare it in "
                            "[models.NAME])")
    for model in fallbacks:
        seen = [model]
        while (nxt := fallbacks.get(seen[-1])) is not None:
            if nxt in seen:
                raise top.error(f"fallback of {model}: the fallbacks make a cycle {' -> '.join([*seen, nxt])}")
            seen.append(nxt)
    targets = known | set(ensembles)
    if declared[0] not in targets:  # an unknown [model] name: a model of its own
        raise top.error(f"[model] name {declared[0]} is neither a model nor an ensemble")
    default_target = declared[0]
    routing = None
    if "routing" in top.data:
        routing = _routing(top, top.data.pop("routing"), declared[0], targets)
        default_target = routing.default
    if default_target in optional:
        raise top.error(f"the default route's model {default_target} cannot be optional")
    return models, tuple(optional), fallbacks, routing, ensembles


def _ensemble(top: _Table, ens: str, raw: Any) -> Ensemble:
    t = _Table(top.pipeline, top.where, f"ensembles.{ens}", raw)
    members = t.data.pop("members", None)
    if not isinstance(members, list) or len(members) < 2 or not all(isinstance(m, str) and m for m in members):
        raise t.error(f"[ensembles.{ens}] members must be a list of at least two model names")
    if len(set(members)) != len(members):
        raise t.error(f"[ensembles.{ens}] members name a model twice")
    combine = t.text("combine", "mean")
    if combine not in COMBINE_RULES:
        raise t.error(f"[ensembles.{ens}] combine {combine!r} is not one of {list(COMBINE_RULES)}")
    weights = t.data.pop("weights", None)
    if combine == "weighted":
        if not isinstance(weights, list) or not all(isinstance(w, int | float) and not isinstance(w, bool)
                                                    for w in weights):
            raise t.error(f"[ensembles.{ens}] combine = \"weighted\" needs weights = [...] (numbers, one per member)")
        if len(weights) != len(members):
            raise t.error(f"[ensembles.{ens}] weights has {len(weights)} numbers for {len(members)} members")
        if any(w < 0 for w in weights) or not sum(weights) > 0:
            raise t.error(f"[ensembles.{ens}] weights must be >= 0 with a positive sum")
    elif weights is not None:
        raise t.error(f"[ensembles.{ens}] weights are only for combine = \"weighted\"")
    t.done()
    return Ensemble(ens, tuple(members), combine, tuple(float(w) for w in weights or ()))


def _routing(top: _Table, raw: Any, default: str, targets: set[str]) -> Routing:
    t = _Table(top.pipeline, top.where, "routing", raw)
    fields = t.data.pop("fields", None)
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
        raise t.error("[routing] fields must be a non-empty list of field names")
    default = t.text("default", default)
    if default not in targets:
        raise t.error(f"[routing] default {default} is not a model or an ensemble of this pipeline")
    raw_routes = t.data.pop("route", [])
    if not isinstance(raw_routes, list):
        raise t.error("[routing] routes are [[routing.route]] tables with model and values")
    routes = []
    for i, raw_route in enumerate(raw_routes):
        r = _Table(top.pipeline, top.where, f"routing.route {i + 1}", raw_route)
        model = r.text("model")
        if model not in targets:
            raise r.error(f"[[routing.route]] {i + 1}: model {model} is not a model or an ensemble of this pipeline")
        values = r.data.pop("values", None)
        if not isinstance(values, list) or not values:
            raise r.error(f"[[routing.route]] {i + 1} ({model}): values must be a non-empty list")
        r.done()
        routes.append(Route(model, tuple(values)))
    t.done()
    return Routing(tuple(fields), default, tuple(routes))


def _default_record(name: str) -> str:
    words = re.split(r"[-_]", name)
    return "dev.edml.pipelines." + "".join(w[:1].upper() + w[1:] for w in words if w) + "Prediction"


# --- schemas -----------------------------------------------------------------------------------


def load_schema(pipeline: Pipeline, source: SchemaSource,
                fetch_subject: Callable[[str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Avro schema (JSON) ``source`` names; a registry subject needs ``fetch_subject`` (subject -> schema)."""
    if source.subject is not None:
        if fetch_subject is None:
            raise pipeline.error(f"schema subject {source.subject!r} needs a schema registry (schema_registry_url)")
        return fetch_subject(source.subject)
    if source.builtin is not None:
        path = SCHEMA_DIR / f"{source.builtin}.avsc"
        if not path.is_file():
            raise pipeline.error(f"edml has no schema {source.builtin!r} (schemas/avro/{source.builtin}.avsc)")
    else:
        assert source.path is not None
        path = source.path
    try:
        schema = json.loads(path.read_text())
    except FileNotFoundError:
        raise pipeline.error(f"schema file {path} does not exist") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise pipeline.error(f"schema file {path} is not JSON: {e}") from None
    if not isinstance(schema, dict):
        raise pipeline.error(f"schema file {path} is not an Avro record schema")
    return schema


def input_fields(pipeline: Pipeline, schema_json: dict[str, Any]) -> dict[str, FieldSpec]:
    """The input schema's fields by name; a schema the columnar codec cannot read is a :class:`PipelineError`."""
    try:
        return {f.name: f for f in flat_fields(schema_json)}
    except UnsupportedSchema as e:
        raise pipeline.error(f"input schema: {e}") from None


def check_declaration(pipeline: Pipeline, schema_json: dict[str, Any],
                      label_schema_json: dict[str, Any] | None = None) -> dict[str, FieldSpec]:
    """Check ``pipeline`` against its input schema (and its labels' schema); returns the input fields.

    Raises :class:`PipelineError` naming the pipeline and the field: a key, event-time, mapped or
    constrained field the schema lacks, a constraint that does not fit the field's type.
    """
    fields = input_fields(pipeline, schema_json)
    key = fields.get(pipeline.input.key)
    if key is None:
        raise pipeline.error(f"[input] key field {pipeline.input.key} is not in the input schema")
    if key.type not in ("string", "bytes", "int", "long") or key.nullable:
        raise pipeline.error(f"[input] key field {key.name} is {key.describe()}; a key is a string, bytes, int or "
                             "long that is never null")
    if key.name in LINEAGE_FIELDS:
        raise pipeline.error(f"[input] key field {key.name} has the name of a prediction's lineage field "
                             f"({', '.join(LINEAGE_FIELDS)}); a prediction could not hold both")
    when = fields.get(pipeline.input.event_time)
    if when is None:
        raise pipeline.error(f"[input] event_time field {pipeline.input.event_time} is not in the input schema")
    if when.type not in ("int", "long") or when.nullable:
        raise pipeline.error(f"[input] event_time field {when.name} is {when.describe()}; it must be a long of epoch "
                             "milliseconds")
    for model_input, record_field in pipeline.inputs.items():
        if record_field not in fields:
            raise pipeline.error(f"[inputs] {model_input} = {record_field!r}: field {record_field} is not in the "
                                 "input schema")
    for c in pipeline.constraints:  # one per field: TOML refuses a key given twice
        problems = constraint_problems(c, fields.get(c.field))
        if problems:
            raise pipeline.error(problems[0])
    for rule in pipeline.alerts:  # fields of the input here; the prediction's are checked against each model
        known = {c.field: fields[c.field] for c in rule.when if c.field in fields}
        problems = rule_problems(AlertRule(rule.name, tuple(c for c in rule.when if c.field in fields)), known)
        if problems:
            raise pipeline.error(problems[0])
    if pipeline.routing is not None:
        check_routing(pipeline, pipeline.routing, fields)
    for ens in pipeline.ensembles.values():
        if ens.combine == "most-confident" and (pipeline.labels is None or pipeline.labels.task != "binary"):
            raise pipeline.error(f"[ensembles.{ens.name}] combine = \"most-confident\" is for binary classification: "
                                 "declare [labels] task = \"binary\"")
    if pipeline.labels is not None and label_schema_json is not None:
        check_labels(pipeline, label_schema_json)
    return fields


# the Python values a routing field of each Avro type can be compared to
_ROUTE_VALUES: dict[str, tuple[type, ...]] = {
    "int": (int,), "long": (int,), "string": (str,), "enum": (str,), "boolean": (bool,),
    "float": (int, float), "double": (int, float), "bytes": (),
}


def check_routing(pipeline: Pipeline, routing: Routing, fields: dict[str, FieldSpec]) -> None:
    """Each routing field is in the input schema and each route's values are of a kind its values can equal."""
    for name in routing.fields:
        spec = fields.get(name)
        if spec is None:
            raise pipeline.error(f"[routing] field {name} is not in the input schema")
        kinds = _ROUTE_VALUES.get(spec.type, ())
        if not kinds:
            raise pipeline.error(f"[routing] field {name} is {spec.describe()}; route by a string, enum, integer, "
                                 "number or boolean field")
        for route in routing.routes:
            for value in route.values:
                fits = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
                if not fits:
                    raise pipeline.error(f"[[routing.route]] {route.model}: value {value!r} cannot equal field {name} "
                                         f"({spec.describe()})")
                if spec.type == "enum" and value not in spec.symbols:
                    raise pipeline.error(f"[[routing.route]] {route.model}: value {value!r} is not a symbol of field "
                                         f"{name}'s enum")


def check_labels(pipeline: Pipeline, label_schema_json: dict[str, Any]) -> None:
    """Check the labels' key and label field against the label topic's schema."""
    labels = pipeline.labels
    assert labels is not None
    try:
        fields = {f.name: f for f in flat_fields(label_schema_json)}
    except UnsupportedSchema as e:
        raise pipeline.error(f"[labels] schema: {e}") from None
    if labels.key not in fields:
        raise pipeline.error(f"[labels] key field {labels.key} is not in the label schema")
    if labels.time and labels.time not in fields:
        raise pipeline.error(f"[labels] time field {labels.time} is not in the label schema")
    if labels.time and (fields[labels.time].type not in ("int", "long") or fields[labels.time].nullable):
        raise pipeline.error(f"[labels] time field {labels.time} is {fields[labels.time].describe()}; it must be a "
                             "long of epoch milliseconds")
    label = fields.get(labels.field)
    if label is None:
        raise pipeline.error(f"[labels] field {labels.field} is not in the label schema")
    numeric = ("int", "long", "float", "double") + (("boolean",) if labels.task == "binary" else ())
    if label.type not in numeric:
        raise pipeline.error(f"[labels] field {label.name} is {label.describe()}; a {labels.task} label is a number"
                             + (" or a boolean" if labels.task == "binary" else ""))
