"""What an edml process must not print at start: native libraries' start-up chatter."""

from __future__ import annotations

import os

# TensorFlow's C++ start-up lines, absl's pre-init notice, librdkafka's self-healing retry
START_UP_NOISE = (
    "cpu_feature_guard",
    "This TensorFlow binary is optimized",
    "oneDNN custom operations",
    "absl::InitializeLog",
    "Coordinator load in progress",
)


def plain_env(**extra: str) -> dict[str, str]:
    """The environment without the quieting variables the Makefile exports, as a user's shell."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    return env | extra


def noise_in(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are start-up noise."""
    return [line for line in stderr.splitlines() if any(n in line for n in START_UP_NOISE)]
