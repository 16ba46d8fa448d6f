"""The ``edml`` command: one entry point for every job."""

from __future__ import annotations

import importlib
import os
import sys

# Before anything can import TensorFlow (and in every process edml starts, which inherit the
# environment): level 2 drops TensorFlow's C++ INFO and WARNING start-up lines (cpu features,
# oneDNN, absl) but keeps its errors. An operator's own value wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import typer  # noqa: E402 - after the environment defaults above

from edml.core.errors import EdmlError, exit_for  # noqa: E402

# Click's plain help: rich's panels cut option names on an 80-column terminal
# (`--bootstrap-serv…`) and label every flag `<bool>`; the plain form wraps the help text instead.
HELP_SETTINGS = {"max_content_width": 100, "help_option_names": ["--help", "-h"]}

app = typer.Typer(
    help="edml: event-driven machine learning. Score a Kafka stream of taxi trips with the "
    "model on a compacted model topic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings=HELP_SETTINGS,
)

# Each module adds its commands; heavy imports (TensorFlow, Bytewax) stay inside the commands
# so that `edml --help` is instant.
COMMAND_MODULES = [
    "edml.cli.commands.kafka",
    "edml.cli.commands.registry",
    "edml.cli.commands.serve",
    "edml.cli.commands.data",
    "edml.cli.commands.train",
    "edml.cli.commands.publish",
    "edml.cli.commands.replay",
    "edml.cli.commands.evaluate",
    "edml.cli.commands.bench",
    "edml.cli.commands.demo",
    "edml.cli.commands.pipelines",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Run the CLI; an edml error prints one line: operator mistakes exit 2, refusals exit 1."""
    try:
        app()
    except EdmlError as e:
        code, line = exit_for(e, command_name(sys.argv[1:]))
        print(line, file=sys.stderr)
        sys.exit(code)


def command_name(argv: list[str]) -> str | None:
    """The command ``argv`` runs, with its group (``publish``, ``models retire``); None when it names none."""
    command = typer.main.get_command(app)
    names = []
    for arg in argv:
        subcommands = getattr(command, "commands", {})  # a group's commands (typer ships its own click)
        if arg not in subcommands:
            break
        names.append(arg)
        command = subcommands[arg]
    return " ".join(names) or None

if __name__ == "__main__":
    main()
