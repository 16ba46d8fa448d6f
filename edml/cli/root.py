"""The ``edml`` command: one entry point for every job."""

from __future__ import annotations

import importlib
import sys

import typer

from edml.core.errors import EdmlError, exit_for

app = typer.Typer(
    help="edml: event-driven machine learning. Score a Kafka stream of taxi trips with the "
    "model on a compacted model topic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module adds its commands; heavy imports (TensorFlow, Bytewax) stay inside the commands
# so that `edml --help` is instant.
COMMAND_MODULES = [
    "edml.cli.commands.kafka",
    "edml.cli.commands.serve",
    "edml.cli.commands.data",
    "edml.cli.commands.train",
    "edml.cli.commands.publish",
    "edml.cli.commands.replay",
    "edml.cli.commands.evaluate",
    "edml.cli.commands.bench",
    "edml.cli.commands.demo",
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
