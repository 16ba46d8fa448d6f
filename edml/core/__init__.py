"""The floor of edml: settings, the error base, metrics and logging. It imports nothing else of edml."""
