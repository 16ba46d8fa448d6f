"""The ``edml`` command: one entry point for every job."""

from __future__ import annotations

import importlib
import os
from typing import Any

# Before anything can import TensorFlow (and in every process edml starts, which inherit the
# environment): level 2 drops TensorFlow's C++ INFO and WARNING start-up lines (cpu features,
# oneDNN, absl) but keeps its errors. An operator's own value wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import typer  # noqa: E402 - after the environment defaults above
from typer.core import TyperGroup  # noqa: E402

from edml.core.errors import EdmlError, exit_for  # noqa: E402

# Click's plain help: rich's panels cut option names on an 80-column terminal
# (`--bootstrap-serv…`) and label every flag `<bool>`; the plain form wraps the help text instead.
HELP_SETTINGS = {"max_content_width": 100, "help_option_names": ["--help", "-h"]}


class EdmlCommands(TyperGroup):
    """The root command group: an ``EdmlError`` from any command becomes its one line and exit code.

    Operator mistakes exit 2 (``edml: error: <reason>``), refusals exit 1 (``edml: <command> refused:
    <reason>``); see ``edml.core.errors``. Here rather than in ``main`` so that every way of running
    the app (``main``, typer's test runner) behaves the same.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Keep the command line: it names the command a refusal line mentions."""
        ctx.meta["edml.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        """Run the command; map an edml error to its line and exit code."""
        try:
            return super().invoke(ctx)
        except EdmlError as e:
            code, line = exit_for(e, self.command_name(ctx.meta.get("edml.argv", [])))
            typer.echo(line, err=True)
            raise typer.Exit(code) from None

    def command_name(self, argv: list[str]) -> str | None:
        """The command ``argv`` runs, with its group (``publish``, ``models retire``); None when it names none."""
        command: Any = self
        names = []
        for arg in argv:
            subcommands = getattr(command, "commands", {})  # a group's commands
            if arg not in subcommands:
                break
            names.append(arg)
            command = subcommands[arg]
        return " ".join(names) or None


app = typer.Typer(
    cls=EdmlCommands,
    help="edml: event-driven machine learning. Score Kafka streams with the models on compacted model "
    "topics; each stream and its model is a pipeline declared in configuration (`edml pipelines list`; "
    "the default, taxi, predicts taxi trip durations).",
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
    "edml.cli.commands.autopilot",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Run the CLI; an edml error prints one line: operator mistakes exit 2, refusals exit 1."""
    app()

if __name__ == "__main__":
    main()
