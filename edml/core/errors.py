"""The operator-mistake exception: the CLI prints its message as one line and exits 2."""


class OperatorError(Exception):
    """A mistake the operator can fix (bad config, missing tool, unreachable broker)."""
