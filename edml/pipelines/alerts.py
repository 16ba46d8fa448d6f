"""Alert rules: conditions on a prediction (and its event) that send a copy of it to an alert topic.

Declared per pipeline, one table per rule::

    [alerts.likely-removed]
    when = ["p_removed >= 0.8", "community != 'kids'"]

Every condition is ``FIELD OP LITERAL`` with OP one of ``>= > <= < == !=`` and a number, a
``'quoted string'``, ``true`` or ``false``; a rule fires when all of its conditions hold. FIELD
is a prediction field (a model output, by its name in the prediction record) or a field of the
input record. Rules are checked on the champion's predictions, a whole batch at a time; each
alert is the prediction record plus the rule's name, keyed by the event's key, on the pipeline's
``prediction_alerts`` topic.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edml.schemas.columnar import FieldSpec

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*$")
_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
NUMERIC = ("int", "long", "float", "double")


class RuleError(ValueError):
    """A rule that cannot be read or cannot apply; one line naming the rule."""


@dataclass(frozen=True)
class Condition:
    """``field op value``."""

    field: str
    op: str
    value: float | str | bool

    def describe(self) -> str:
        """The condition as written."""
        value = f"'{self.value}'" if isinstance(self.value, str) else str(self.value).lower() \
            if isinstance(self.value, bool) else f"{self.value:g}"
        return f"{self.field} {self.op} {value}"


@dataclass(frozen=True)
class AlertRule:
    """A named conjunction of conditions."""

    name: str
    when: tuple[Condition, ...]

    def describe(self) -> str:
        """The rule as one line."""
        return f"{self.name}: " + " and ".join(c.describe() for c in self.when)


def _literal(text: str, where: str) -> float | str | bool:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text)
    except ValueError:
        raise RuleError(f"{where}: {text!r} is not a number, a 'quoted string', true or false") from None


def parse_condition(text: str, where: str) -> Condition:
    """A :class:`Condition` from ``FIELD OP LITERAL``; raises :class:`RuleError`."""
    match = _CONDITION.match(text)
    if match is None:
        raise RuleError(f"{where}: {text!r} is not FIELD OP VALUE (OP one of {' '.join(OPERATORS)})")
    field, op, literal = match.groups()
    return Condition(field, op, _literal(literal, where))


def parse_rule(name: str, raw: Any) -> AlertRule:
    """An :class:`AlertRule` from its TOML table ``{when = [...]}``; raises :class:`RuleError`."""
    where = f"[alerts.{name}]"
    if not _RULE_NAME.match(name):
        raise RuleError(f"{where}: a rule's name is letters, digits, '.', '-' and '_'")
    if not isinstance(raw, dict):
        raise RuleError(f"{where} must be a table with when = [\"FIELD OP VALUE\", ...]")
    data = dict(raw)
    when = data.pop("when", None)
    if "topic" in data:
        raise RuleError(f"{where}: every rule of a pipeline writes to its prediction_alerts topic; name it in "
                        "[topics] prediction_alerts = \"...\" instead of a topic per rule")
    if data:
        raise RuleError(f"{where} has unknown key(s) {sorted(data)} (known: when)")
    if isinstance(when, str):
        when = [when]
    if not isinstance(when, list) or not when or not all(isinstance(c, str) for c in when):
        raise RuleError(f"{where}: when must be a non-empty list of conditions like \"score >= 0.8\"")
    return AlertRule(name, tuple(parse_condition(c, where) for c in when))


def rule_problems(rule: AlertRule, fields: dict[str, FieldSpec]) -> list[str]:
    """Why ``rule`` cannot apply to records with ``fields`` (input and prediction fields by name)."""
    problems = []
    for c in rule.when:
        spec = fields.get(c.field)
        where = f"alert rule {rule.name}: {c.describe()}"
        if spec is None:
            problems.append(f"{where}: {c.field} is neither a field of the input nor of the prediction")
        elif spec.type == "array":
            problems.append(f"{where}: {c.field} is a vector; a condition compares one value")
        elif spec.type in NUMERIC:
            if isinstance(c.value, str | bool):
                problems.append(f"{where}: {c.field} is a number, compare it with a number")
        elif spec.type == "boolean":
            if not isinstance(c.value, bool) or c.op not in ("==", "!="):
                problems.append(f"{where}: {c.field} is a boolean: use == or != with true or false")
        elif not isinstance(c.value, str) or c.op not in ("==", "!="):
            problems.append(f"{where}: {c.field} is {spec.describe()}: use == or != with a 'quoted string'")
    return problems


def matches(rule: AlertRule, columns: dict[str, np.ndarray], n: int,
            nulls: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Which of ``n`` rows the rule fires on (a bool mask); NaN and null values never match."""
    mask = np.ones(n, dtype=bool)
    for c in rule.when:
        absent = (nulls or {}).get(c.field)
        if absent is not None:
            mask &= ~absent
        values = columns[c.field]
        compare = OPERATORS[c.op]
        if values.dtype == object:
            hit = np.fromiter((v is not None and bool(compare(v, c.value)) for v in values.tolist()), dtype=bool,
                              count=n)
        else:
            with np.errstate(invalid="ignore"):
                hit = np.asarray(compare(values, c.value), dtype=bool)
        mask &= hit
    return mask


def alert_schema(prediction_schema: dict[str, Any]) -> dict[str, Any]:
    """The alert record: the prediction record and the name of the rule that fired."""
    schema = dict(prediction_schema)
    schema["name"] = f"{prediction_schema['name']}Alert"
    schema["doc"] = f"An alert: a prediction an alert rule fired on. {prediction_schema.get('doc', '')}".strip()
    schema["fields"] = [*prediction_schema["fields"], {"name": "rule", "type": "string",
                                                       "doc": "the alert rule that fired"}]
    return schema
