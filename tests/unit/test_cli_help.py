"""``edml ... --help`` on an 80-column terminal: every option name whole, no ``<bool>`` types."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
import typer.main

from edml.cli.root import app

EDML = [sys.executable, "-m", "edml.cli"]


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append(((*path, name), command))
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_group(app))


def _help(*args: str) -> str:
    env = os.environ | {"COLUMNS": "80", "TERM": "xterm-256color"}
    done = subprocess.run([*EDML, *args, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_top_level_help_shows_no_bool_type() -> None:
    out = _help()
    assert "<bool>" not in out
    assert "--help" in out and "serve" in out


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_name_appears_whole_at_80_columns(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    out = _help(*path)
    assert "<bool>" not in out and "…" not in out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    for param in command.params:
        for name in [*param.opts, *param.secondary_opts]:
            if name.startswith("-"):
                assert name in out, f"{name} cut or missing in `edml {' '.join(path)} --help`:\n{out}"
