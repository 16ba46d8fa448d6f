"""``python -m edml.trainer.moderation generate|train``: the moderation example's entry points on their own."""

from __future__ import annotations

import argparse
import sys

from edml.trainer.moderation.commands import DEFAULT_COMMENTS, generate_command, train_command

from edml.core.errors import OperatorError


def main(argv: list[str] | None = None) -> int:
    """Run ``generate`` or ``train``; an operator mistake prints one line and returns 2."""
    parser = argparse.ArgumentParser(prog="python -m edml.trainer.moderation", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="Generate comments and moderation decisions (Avro files) into a folder.")
    gen.add_argument("--out", required=True, help="Folder for comments.avro and decisions.avro.")
    gen.add_argument("--n", type=int, default=DEFAULT_COMMENTS, help="Number of comments.")
    gen.add_argument("--seed", type=int, default=0, help="Seed: the same seed gives the same files.")
    gen.add_argument("--span-days", type=float, default=7.0, help="Comments spread over this many days.")
    train = sub.add_parser("train", help="Train the comment classifier on a generated folder and export it.")
    train.add_argument("--data", required=True, help="Folder with comments.avro and decisions.avro.")
    train.add_argument("--out", required=True, help="Output folder: saved_model/, metrics.json, golden.json, ...")
    train.add_argument("--epochs", type=int, default=6, help="Passes over the training comments.")
    train.add_argument("--seed", type=int, default=0, help="Seed of the split, the initial weights and the shuffling.")
    train.add_argument("--max-rows", type=int, default=None, help="Read at most this many comments.")
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            print(generate_command(args.out, n=args.n, seed=args.seed, span_days=args.span_days))
        else:
            print(train_command(args.data, args.out, epochs=args.epochs, seed=args.seed, max_rows=args.max_rows))
    except OperatorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
