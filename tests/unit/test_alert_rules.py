"""Alert rules: read from a declaration, checked against fields, applied to whole columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edml.schemas.columnar import FieldSpec

from edml.pipelines.alerts import AlertRule, Condition, matches, parse_rule, rule_problems
from edml.pipelines.declaration import PipelineError, parse_pipeline

FIELDS = {"score": FieldSpec("score", "double"), "site": FieldSpec("site", "enum", ("a", "b")),
          "flag": FieldSpec("flag", "boolean"), "vec": FieldSpec("vec", "array", items="double")}


def test_a_rule_is_a_conjunction_of_conditions() -> None:
    rule = parse_rule("high", {"when": ["score >= 0.8", "site == 'a'", "flag != true"]})
    assert rule == AlertRule("high", (Condition("score", ">=", 0.8), Condition("site", "==", "a"),
                                      Condition("flag", "!=", True)))
    assert rule.describe() == "high: score >= 0.8 and site == 'a' and flag != true"
    columns = {"score": np.array([0.9, 0.8, np.nan, 0.95, 0.1]),
               "site": np.array(["a", "a", "a", "b", "a"], dtype=object),
               "flag": np.array([False, False, False, False, True])}
    assert matches(rule, columns, 5).tolist() == [True, True, False, False, False]
    nulls = {"score": np.array([True, False, False, False, False])}
    assert matches(rule, columns, 5, nulls).tolist() == [False, True, False, False, False]


@pytest.mark.parametrize(("raw", "error"), [
    ({"when": ["score 1"]}, "is not FIELD OP VALUE"),
    ({"when": ["score >= high"]}, "is not a number"),
    ({"when": []}, "non-empty list"),
    ({"when": ["score > 1"], "topic": "x"}, "prediction_alerts"),
    ({"when": ["score > 1"], "then": "x"}, "unknown key"),
])
def test_a_bad_rule_is_refused_with_its_name(raw: dict, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_rule("r1", raw)


def test_conditions_must_fit_their_fields() -> None:
    def problems(*when: str) -> list[str]:
        return rule_problems(parse_rule("r", {"when": list(when)}), FIELDS)

    assert problems("score > 0.5", "site != 'b'", "flag == false") == []
    assert problems("nothing > 1") == ["alert rule r: nothing > 1: nothing is neither a field of the input nor of "
                                       "the prediction"]
    assert "compare it with a number" in problems("score == 'x'")[0]
    assert "use == or !=" in problems("site > 'a'")[0]
    assert "a vector" in problems("vec > 1")[0]


def test_a_declaration_names_the_pipeline_in_a_bad_rule(tmp_path: Path) -> None:
    data = {"input": {"topic": "t", "schema": "x.avsc", "key": "k", "event_time": "t"}, "model": {"name": "m"},
            "alerts": {"bad": {"when": ["score ~ 1"]}}}
    with pytest.raises(PipelineError, match=r"^pipeline p \(here\): \[alerts.bad\]"):
        parse_pipeline("p", data, "here", tmp_path)
