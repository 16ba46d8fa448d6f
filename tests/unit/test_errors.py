"""One error base with two kinds: the CLI prints one line, exit 2 for operator mistakes, 1 for refusals."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import tomllib
from pathlib import Path

import pytest
import typer
from edml.model_topic.stores import StoreConfigError

from edml.cli import root
from edml.core.errors import EdmlError, OperatorError, Refusal

ROOT = Path(__file__).resolve().parents[2]


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception,
            argv: list[str]) -> tuple[int, list[str]]:
    """``edml <argv>`` through the real entry point, with commands that raise ``error``."""
    app = typer.Typer(cls=root.EdmlCommands)

    @app.command("publish")
    def publish() -> None:
        raise error

    models = typer.Typer()

    @models.command("retire")
    def retire(name: str) -> None:
        raise error

    app.add_typer(models, name="models")
    monkeypatch.setattr(root, "app", app)
    monkeypatch.setattr(sys, "argv", ["edml", *argv])
    with pytest.raises(SystemExit) as exited:
        root.main()
    captured = capsys.readouterr()
    assert captured.out == ""
    return exited.value.code, captured.err.splitlines()


def test_an_operator_mistake_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_cli(monkeypatch, capsys, OperatorError("metrics port 9100 is not free: pass --metrics-port"),
                          ["publish"])
    assert (code, lines) == (2, ["edml: error: metrics port 9100 is not free: pass --metrics-port"])


def test_a_refusal_exits_1_with_one_line_naming_the_command(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_cli(monkeypatch, capsys, Refusal("mae 300.0 is worse than 200.0"), ["publish"])
    assert (code, lines) == (1, ["edml: publish refused: mae 300.0 is worse than 200.0"])
    code, lines = run_cli(monkeypatch, capsys, Refusal("broker said no\nsecond line"), ["models", "retire", "x"])
    assert (code, lines) == (1, ["edml: models retire refused: broker said no second line"])


def test_an_error_of_both_kinds_is_an_operator_mistake(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # a store URI the operator must fix is also a store error (a refusal) for the code that catches those
    code, lines = run_cli(monkeypatch, capsys, StoreConfigError("unsupported artifact store 's3://x'"), ["publish"])
    assert (code, lines) == (2, ["edml: error: unsupported artifact store 's3://x'"])


def edml_modules() -> list[str]:
    """Every module of the installed package (the packages pyproject.toml lists), but ``__main__``."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    names = []
    for package in packages:
        module = importlib.import_module(package)
        names.append(package)
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(module.__path__)
                  if not m.ispkg and m.name != "__main__"]
    return names


def carries_a_reason(cls: type) -> bool:
    """An exception built from a reason, or that keeps one as an attribute."""
    init_takes_reason = "reason" in inspect.signature(cls.__init__).parameters
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        source = ""
    return init_takes_reason or "self.reason" in source


def test_every_edml_exception_with_a_reason_is_an_edml_error() -> None:
    with_reason, outside = set(), []
    for name in edml_modules():
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if (inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == name
                    and carries_a_reason(cls)):
                with_reason.add(cls.__qualname__)
                if cls is not EdmlError and not issubclass(cls, (OperatorError, Refusal)):
                    outside.append(f"{name}.{cls.__qualname__}")
    assert outside == [], "exceptions with a reason must derive from OperatorError or Refusal"
    # the walk saw the package: the domain errors of the scorer and the model topic are among them
    assert {"ModelRejected", "GateRefused", "ArtifactError", "StoreError", "PublishError", "SignatureInvalid",
            "EdmlError", "ConfigError"} <= with_reason
    assert issubclass(OperatorError, EdmlError) and issubclass(Refusal, EdmlError)
