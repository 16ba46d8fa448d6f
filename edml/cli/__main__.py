"""``python -m edml.cli``: the same as the ``edml`` command."""

from edml.cli.root import main

main()
